"""fit(): the newest whole turns that fit the prompt budget; instructions in the first user turn."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from core.context import INSTRUCTION_SEPARATOR, MessageTooLong, fit
from core.conversation import Role, StoredMessage
from core.llm.events import ChatMessage
from core.tokens import ASSISTANT_OVERHEAD, PROMPT_OVERHEAD, USER_OVERHEAD

USER, ASSISTANT = Role.USER, Role.ASSISTANT


def user(text: str, tokens: int = 10) -> StoredMessage:
    """A stored user message."""
    return StoredMessage(USER, text, tokens)


def answer(text: str, tokens: int = 10) -> StoredMessage:
    """A stored answer."""
    return StoredMessage(ASSISTANT, text, tokens)


def history(*sizes: tuple[int, int]) -> list[StoredMessage]:
    """Turns of (question tokens, answer tokens), oldest first, named q0/a0, q1/a1, …"""
    messages: list[StoredMessage] = []
    for n, (asked, answered) in enumerate(sizes):
        messages += [user(f"q{n}", asked), answer(f"a{n}", answered)]
    return messages


def turn_cost(asked: int, answered: int) -> int:
    """A turn's prompt tokens, template overhead included."""
    return asked + USER_OVERHEAD + answered + ASSISTANT_OVERHEAD


def prompt_cost(new: int, turns: Sequence[tuple[int, int]], instructions: int = 0) -> int:
    """The whole prompt's tokens."""
    folded = instructions + 1 if instructions else 0
    return PROMPT_OVERHEAD + new + USER_OVERHEAD + folded + sum(turn_cost(*t) for t in turns)


def contents(messages: Sequence[ChatMessage]) -> list[str]:
    """Message texts."""
    return [m.content for m in messages]


def test_everything_fits() -> None:
    turns = [(10, 20), (5, 30)]
    fitted = fit(history(*turns), user("now", 7), budget=1000)
    assert contents(fitted.messages) == ["q0", "a0", "q1", "a1", "now"]
    assert [m.role for m in fitted.messages] == ["user", "assistant"] * 2 + ["user"]
    assert fitted.prompt_tokens == prompt_cost(7, turns)
    assert fitted.kept_messages == 5
    assert (fitted.dropped_turns, fitted.first_drop) == (0, False)


def test_oldest_whole_turns_are_dropped_first() -> None:
    turns = [(10, 20), (10, 20), (10, 20), (10, 20)]
    budget = prompt_cost(5, turns[2:])  # room for exactly the two newest turns
    fitted = fit(history(*turns), user("now", 5), budget=budget)
    assert contents(fitted.messages) == ["q2", "a2", "q3", "a3", "now"]
    assert fitted.dropped_turns == 2
    assert fitted.prompt_tokens == budget
    fitted = fit(history(*turns), user("now", 5), budget=budget - 1)
    assert contents(fitted.messages) == ["q3", "a3", "now"]
    assert fitted.dropped_turns == 3


def test_an_older_small_turn_is_not_kept_when_a_newer_one_did_not_fit() -> None:
    turns = [(1, 1), (500, 500), (10, 10)]
    fitted = fit(history(*turns), user("now", 5), budget=prompt_cost(5, [(1, 1), (10, 10)]))
    assert contents(fitted.messages) == ["q2", "a2", "now"]  # no gap in the conversation
    assert fitted.dropped_turns == 2


def test_nothing_of_the_history_fits() -> None:
    fitted = fit(history((100, 100)), user("now", 5), budget=prompt_cost(5, []))
    assert contents(fitted.messages) == ["now"]
    assert fitted.dropped_turns == 1


def test_kept_history_starts_with_a_user_turn() -> None:
    stray = [answer("orphan", 3), answer("orphan2", 3)]
    messages = [*stray, *history((10, 10), (10, 10)), user("unanswered", 4)]
    fitted = fit(messages, user("now"), budget=10_000)
    assert fitted.messages[0].role == "user"
    assert contents(fitted.messages) == ["q0", "a0", "q1", "a1", "now"]
    roles = [m.role for m in fitted.messages]
    assert all(a != b for a, b in itertools.pairwise(roles)), "roles must alternate"


def test_instructions_are_folded_into_the_first_user_message() -> None:
    fitted = fit(
        history((10, 10)),
        user("now"),
        budget=10_000,
        instructions="Be brief.",
        instruction_tokens=3,
    )
    assert fitted.messages[0].role == "user"
    assert fitted.messages[0].content == "Be brief." + INSTRUCTION_SEPARATOR + "q0"
    assert contents(fitted.messages)[1:] == ["a0", "now"]
    assert all(m.role in ("user", "assistant") for m in fitted.messages)
    assert fitted.prompt_tokens == prompt_cost(10, [(10, 10)], instructions=3)


def test_instructions_go_into_the_new_message_when_no_history_is_kept() -> None:
    fitted = fit([], user("hello"), budget=1000, instructions="Be brief.", instruction_tokens=3)
    assert [(m.role, m.content) for m in fitted.messages] == [
        ("user", "Be brief." + INSTRUCTION_SEPARATOR + "hello")
    ]


def test_instructions_count_against_the_budget() -> None:
    turns = [(10, 10), (10, 10)]
    budget = prompt_cost(5, turns)
    assert fit(history(*turns), user("now", 5), budget=budget).dropped_turns == 0
    fitted = fit(
        history(*turns), user("now", 5), budget=budget, instructions="x", instruction_tokens=20
    )
    assert fitted.dropped_turns == 1
    assert fitted.prompt_tokens <= budget


def test_a_message_alone_over_the_budget_is_refused_with_its_size_and_the_limit() -> None:
    budget = 100
    room = budget - PROMPT_OVERHEAD - USER_OVERHEAD  # the most one message may have
    fitted = fit(history((10, 10)), user("big", room), budget=budget)
    assert contents(fitted.messages) == ["big"]
    with pytest.raises(MessageTooLong) as caught:
        fit(history((10, 10)), user("bigger", room + 1), budget=budget)
    assert (caught.value.tokens, caught.value.limit) == (room + 1, room)
    assert str(room + 1) in str(caught.value)
    assert str(room) in str(caught.value)


def test_message_too_long_limit_accounts_for_instructions() -> None:
    with pytest.raises(MessageTooLong) as caught:
        fit([], user("big", 90), budget=100, instructions="rules", instruction_tokens=10)
    assert caught.value.limit == 100 - PROMPT_OVERHEAD - USER_OVERHEAD - 10 - 1


def test_first_drop_is_reported_once_when_the_new_message_overflows() -> None:
    turns = [(10, 10), (10, 10)]
    budget = prompt_cost(10, turns)
    assert not fit(history(*turns), user("now", 10), budget=budget).first_drop
    fitted = fit(history(*turns), user("now", 11), budget=budget)  # one token over
    assert fitted.dropped_turns == 1
    assert fitted.first_drop


def test_first_drop_is_reported_when_the_last_long_answer_overflows() -> None:
    """The previous request held everything; its long answer is what no longer fits."""
    older = [(10, 10), (10, 10)]
    budget = prompt_cost(10, older)  # the previous request: q0 a0 q1 a1 + its question
    previous = fit(history(*older), user("q2", 10), budget=budget)
    assert previous.dropped_turns == 0
    turns = [*older, (10, 400)]  # … and the model answered it at length
    fitted = fit(history(*turns), user("now", 10), budget=budget)
    assert fitted.dropped_turns > 0
    assert fitted.first_drop, "the user is never told the history was trimmed"
    later = fit(history(*turns, (10, 10)), user("again", 10), budget=budget)
    assert later.dropped_turns > 0
    assert not later.first_drop


def test_first_drop_counts_the_instructions_the_previous_request_carried() -> None:
    older = [(10, 10), (10, 10)]
    budget = prompt_cost(10, older, instructions=30)
    previous = fit(
        history(*older), user("q2", 10), budget=budget, instructions="x", instruction_tokens=30
    )
    assert previous.dropped_turns == 0
    fitted = fit(
        history(*older, (10, 10)),
        user("now", 10),
        budget=budget,
        instructions="x",
        instruction_tokens=30,
    )
    assert fitted.dropped_turns > 0
    assert fitted.first_drop


def test_no_second_notice_when_the_previous_request_already_dropped() -> None:
    older = [(10, 10), (10, 10)]
    budget = prompt_cost(10, older, instructions=30) - 1
    previous = fit(
        history(*older), user("q2", 10), budget=budget, instructions="x", instruction_tokens=30
    )
    assert previous.dropped_turns == 1
    fitted = fit(
        history(*older, (10, 10)),
        user("now", 10),
        budget=budget,
        instructions="x",
        instruction_tokens=30,
    )
    assert fitted.dropped_turns > 0
    assert not fitted.first_drop


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 200), st.integers(1, 400)), max_size=30),
    st.integers(1, 100),
    st.integers(0, 50),
    st.integers(50, 3000),
)
def test_fit_properties(
    turns: list[tuple[int, int]], new: int, instructions: int, budget: int
) -> None:
    text = "rules" if instructions else ""
    if prompt_cost(new, [], instructions) > budget:
        with pytest.raises(MessageTooLong) as caught:
            fit(
                history(*turns),
                user("now", new),
                budget=budget,
                instructions=text,
                instruction_tokens=instructions,
            )
        assert caught.value.limit == max(0, budget - prompt_cost(0, [], instructions))
        return
    fitted = fit(
        history(*turns),
        user("now", new),
        budget=budget,
        instructions=text,
        instruction_tokens=instructions,
    )
    kept = len(turns) - fitted.dropped_turns
    newest = turns[len(turns) - kept :]
    assert fitted.prompt_tokens == prompt_cost(new, newest, instructions) <= budget
    if fitted.dropped_turns:  # the next older turn really did not fit
        assert fitted.prompt_tokens + turn_cost(*turns[-kept - 1]) > budget
    names = [f"{k}{n}" for n in range(len(turns) - kept, len(turns)) for k in "qa"]
    expected = [*names, "now"]
    if text:
        expected[0] = text + INSTRUCTION_SEPARATOR + expected[0]
    assert contents(fitted.messages) == expected
    assert fitted.messages[0].role == "user"


def test_ten_thousand_message_history_is_fitted_quickly() -> None:
    turns = [(20, 60)] * 5_000
    messages = history(*turns)
    assert len(messages) == 10_000
    # CPU time of this thread, not wall-clock time: another job on the machine cannot inflate
    # it. It takes about 1 ms; the bound catches a quadratic fit, not a busy machine.
    started = time.thread_time()
    fitted = fit(messages, user("now", 20), budget=8_000, instructions="x", instruction_tokens=5)
    elapsed = time.thread_time() - started
    kept = (8_000 - prompt_cost(20, [], 5)) // turn_cost(20, 60)
    assert fitted.dropped_turns == 5_000 - kept
    assert len(fitted.messages) == 2 * kept + 1
    assert contents(fitted.messages)[-3:] == ["q4999", "a4999", "now"]
    assert elapsed < 0.5
