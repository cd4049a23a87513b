"""ThinkSplitter: reasoning/answer split at the first ``</think>`` whatever the chunking."""

from __future__ import annotations

import itertools

import hypothesis.strategies as st
from hypothesis import assume, example, given

from core.llm.events import ReasoningDelta, TextDelta
from core.llm.think import ThinkSplitter
from tests.fuzz.profiles import profile_settings

OPEN, CLOSE = "<think>", "</think>"
# Pieces that make near-miss tags likely: partial tags, stray brackets, tag letters, and text
# from other scripts (one piece may hold several code points, e.g. a ZWJ emoji sequence).
PIECES = [
    "<",
    ">",
    "/",
    "t",
    "h",
    "i",
    "n",
    "k",
    "</",
    "</t",
    "</thi",
    "</think",
    "think>",
    "<th",
    "<think",
    "ink>",
    "a",
    "Z",
    " ",
    "\n",
    "\n\n",
    "é",
    "中文",
    "שלום",
    "🙂",
    "👩‍💻",
    "👍🏽",
    "𝄞",
    "`",
    "```",
]

pieces = st.lists(st.sampled_from(PIECES), max_size=25).map("".join)
leads = st.sampled_from(["", " ", "\n", "  \n", OPEN, OPEN + "\n", " \n" + OPEN + "\n"])
closes = st.sampled_from([CLOSE, CLOSE + "\n\n", ""])
model_outputs = st.builds(lambda a, b, c, d: a + b + c + d, leads, pieces, closes, pieces)

Events = list[ReasoningDelta | TextDelta]


def chunked(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at the given positions (any position, including inside a tag)."""
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def expected(text: str) -> tuple[str, str]:
    """Reasoning is everything before the first ``</think>``, minus a leading ``<think>``."""
    head, _, answer = text.partition(CLOSE)
    stripped = head.lstrip()
    if stripped.startswith(OPEN):
        head = stripped[len(OPEN) :]
    return head, answer


def run(chunks: list[str]) -> Events:
    """Feed every chunk, then flush."""
    splitter = ThinkSplitter()
    events: Events = []
    for chunk in chunks:
        events.extend(splitter.feed(chunk))
    events.extend(splitter.flush())
    return events


def joined(events: Events) -> tuple[str, str]:
    """All reasoning, all answer."""
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, answer


@profile_settings(quick=200)
@given(model_outputs, st.lists(st.integers(min_value=0), max_size=30))
@example("<think>\nplan</think>\n\nanswer", [1, 9, 13, 15, 18, 20])
@example("x</think>y", list(range(11)))  # one character at a time
def test_split_is_exact_for_any_chunking(text: str, cuts: list[int]) -> None:
    events = run(chunked(text, cuts))
    assert joined(events) == expected(text)


@profile_settings()
@given(model_outputs, st.lists(st.integers(min_value=0), max_size=30))
def test_events_are_ordered_and_never_empty(text: str, cuts: list[int]) -> None:
    events = run(chunked(text, cuts))
    assert all(event.text for event in events)
    kinds = [isinstance(e, TextDelta) for e in events]
    assert kinds == sorted(kinds), "reasoning after the answer started"


@profile_settings()
@given(leads, pieces, pieces, st.lists(st.integers(min_value=0), max_size=30))
def test_no_tag_text_leaks(lead: str, thought: str, reply: str, cuts: list[int]) -> None:
    assume(OPEN not in thought + reply and CLOSE not in thought + reply)
    text = lead + thought + CLOSE + reply
    reasoning, answer = joined(run(chunked(text, cuts)))
    for tag in (OPEN, CLOSE):
        assert tag not in reasoning
        assert tag not in answer
    assert answer == reply


@profile_settings()
@given(model_outputs, st.lists(st.integers(min_value=0), max_size=30))
def test_nothing_is_held_back_longer_than_a_possible_tag(text: str, cuts: list[int]) -> None:
    splitter = ThinkSplitter()
    events: Events = []
    fed = ""
    for chunk in chunked(text, cuts):
        fed += chunk
        events.extend(splitter.feed(chunk))
        reasoning, answer = joined(events)
        if CLOSE in fed:
            assert (reasoning, answer) == expected(fed)  # the answer streams straight through
            continue
        want, _ = expected(fed)
        assert answer == ""
        assert want.startswith(reasoning)
        held = len(want) - len(reasoning)
        undecided_opening = OPEN.startswith(fed.lstrip())
        assert held <= len(CLOSE) - 1 or undecided_opening, (fed, reasoning)


def test_r1_template_output_without_opening_tag() -> None:
    chunks = ["Let me ", "think.</", "think>", "\n\nThe answer", " is 4."]
    assert joined(run(chunks)) == ("Let me think.", "\n\nThe answer is 4.")


def test_leading_opening_tag_is_dropped_even_split_in_pieces() -> None:
    chunks = ["\n<", "thi", "nk>", "\nhmm", "</th", "ink>ok"]
    assert joined(run(chunks)) == ("\nhmm", "ok")


def test_only_the_first_closing_tag_splits() -> None:
    chunks = ["a</think>b", "</think>c"]
    assert joined(run(chunks)) == ("a", "b</think>c")


def test_a_later_opening_tag_is_not_stripped() -> None:
    assert joined(run(["well <think>", " x</think>y"])) == ("well <think> x", "y")


def test_answer_chunks_pass_through_one_to_one() -> None:
    splitter = ThinkSplitter()
    assert splitter.feed("r</think>") == [ReasoningDelta("r")]
    assert splitter.feed("one") == [TextDelta("one")]
    assert splitter.feed("") == []
    assert splitter.feed("</think>") == [TextDelta("</think>")]


class TestFlush:
    def test_partial_closing_tag_at_the_end_was_reasoning(self) -> None:
        splitter = ThinkSplitter()
        assert splitter.feed("still thinking </thi") == [ReasoningDelta("still thinking ")]
        assert splitter.flush() == [ReasoningDelta("</thi")]
        assert splitter.flush() == []

    def test_undecided_opening_tag_at_the_end_was_reasoning(self) -> None:
        splitter = ThinkSplitter()
        assert splitter.feed(" <thi") == []
        assert splitter.flush() == [ReasoningDelta(" <thi")]

    def test_whitespace_only_output_is_kept_as_reasoning(self) -> None:
        splitter = ThinkSplitter()
        assert splitter.feed("\n") == []
        assert splitter.flush() == [ReasoningDelta("\n")]

    def test_nothing_pending_after_the_answer_started(self) -> None:
        splitter = ThinkSplitter()
        assert splitter.feed("r</think>a") == [ReasoningDelta("r"), TextDelta("a")]
        assert splitter.flush() == []

    def test_empty_stream(self) -> None:
        splitter = ThinkSplitter()
        assert splitter.flush() == []

    def test_output_without_any_tag_is_all_reasoning(self) -> None:
        # No </think> ever came: the budget ran out while reasoning; the caller tells the user.
        assert joined(run(["no ", "tag ", "here <"])) == ("no tag here <", "")
