"""ReplyStream on virtual time against a strict recording sink: pacing, 429s, rollover, modes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import hypothesis.strategies as st
import looptime
import pytest
from hypothesis import HealthCheck, given

from core.errors import MessageRejected, PlatformError
from core.settings import ShowReasoning
from core.sink import LengthUnit, Segment, SegmentKind, SinkLimits, measure, plain
from core.stream.reply import ReplyStream
from tests.fuzz.profiles import profile_settings
from tests.support.sinks import Op, Outcome, RecordingSink
from tests.unit.test_split_layout import documents, reassemble

pytestmark = pytest.mark.looptime  # asyncio time is virtual: a 30 s wait takes no real time

TELEGRAM = SinkLimits(max_length=4096, unit=LengthUnit.UTF16, min_interval=1.0)
ANSWER, REASONING = SegmentKind.ANSWER, SegmentKind.REASONING
STATUS, NOTICE = SegmentKind.STATUS, SegmentKind.NOTICE
COLLAPSED = SegmentKind.REASONING_COLLAPSED


def now() -> float:
    """Virtual time."""
    return asyncio.get_running_loop().time()


def tokens(text: str, size: int = 4) -> list[str]:
    """``text`` in model-sized pieces."""
    return [text[i : i + size] for i in range(0, len(text), size)]


async def stream_answer(reply: ReplyStream, pieces: Sequence[str], interval: float) -> None:
    """A model streaming its answer: one piece every ``interval`` seconds."""
    for piece in pieces:
        reply.add_answer(piece)
        await asyncio.sleep(interval)


async def stream_reasoning(reply: ReplyStream, pieces: Sequence[str], interval: float) -> None:
    """A model reasoning: one piece every ``interval`` seconds."""
    for piece in pieces:
        reply.add_reasoning(piece)
        await asyncio.sleep(interval)


def assert_sane(sink: RecordingSink) -> None:
    """The platform never saw a rejected message or a write that broke its pacing."""
    assert sink.violations == []
    assert [c for c in sink.writes if c.outcome is Outcome.REJECTED] == []


def kinds(sink: RecordingSink) -> set[SegmentKind]:
    """Every kind of segment any write carried."""
    return {segment.kind for call in sink.writes for segment in call.content}


# -- pacing ---------------------------------------------------------------------------------------


async def test_fast_stream_is_paced_by_time_and_latest_text_wins() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    answer = " ".join(f"word{i}" for i in range(500))  # fits one message
    pieces = tokens(answer)
    await reply.start()
    await stream_answer(reply, pieces, 0.01)  # ~1,000 tokens in ~10 s
    shown = await reply.finish()

    assert_sane(sink)
    duration = len(pieces) * 0.01
    assert len(sink.writes) <= duration / TELEGRAM.min_interval + 2
    assert len(sink.writes) < len(pieces) / 40
    times = [call.at for call in sink.writes]
    assert all(b - a >= TELEGRAM.min_interval - 1e-9 for a, b in itertools.pairwise(times))
    for call in sink.writes[1:-1]:  # each interim write had everything that had arrived
        fed = len("".join(pieces[: int(call.at / 0.01) + 1]))
        assert len(call.text) >= fed - 4 * 2
    assert sink.texts() == [answer]
    assert [plain(content) for content in shown] == [answer]
    assert reply.answer == answer


async def test_sends_and_edits_share_one_budget_with_other_writers() -> None:
    sink = RecordingSink(TELEGRAM)
    await sink.pacer.acquire()  # someone else just wrote to this chat
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    reply.add_answer("hello")
    await reply.finish()
    assert sink.writes[0].at >= TELEGRAM.min_interval


async def test_slow_stream_shows_each_piece_without_extra_writes() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    await stream_answer(reply, ["one", " two", " three"], 5.0)
    await reply.finish()
    assert [call.text for call in sink.successful] == ["one", "one two", "one two three"]
    assert [call.op for call in sink.writes] == [Op.SEND, Op.EDIT, Op.EDIT]


# -- the final text --------------------------------------------------------------------------------


async def test_final_text_lands_even_when_the_last_token_comes_right_after_a_write() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    reply.add_answer("The answer")
    await asyncio.sleep(0.1)  # the first write went out at once
    reply.add_answer(" is 42.")
    started = now()
    await reply.finish()
    assert sink.texts() == ["The answer is 42."]
    assert now() - started <= TELEGRAM.min_interval + 1e-9  # one slot, not more
    assert_sane(sink)


async def test_every_message_gets_a_final_write_on_native_stream_sinks() -> None:
    sink = RecordingSink(
        SinkLimits(max_length=200, unit=LengthUnit.UTF16, min_interval=1.0, needs_final=True)
    )
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    await stream_answer(reply, tokens("lorem ipsum dolor " * 40), 0.05)
    await asyncio.sleep(5)  # the writer has caught up before the turn ends
    await reply.finish()
    assert len(sink.shown) >= 3
    for ref in sink.shown:
        assert sink.last_write_to(ref).final, ref
    assert_sane(sink)


async def test_final_write_is_retried_after_transient_failures() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    reply.add_answer("partial")
    await asyncio.sleep(2)
    reply.add_answer(" and the rest")
    sink.fail_next(3, lambda: PlatformError("bad gateway"))
    await reply.finish()
    assert sink.texts() == ["partial and the rest"]
    assert reply.stats.failures == 3


async def test_final_write_gives_up_after_bounded_attempts() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF, final_attempts=4)
    await reply.start()
    reply.add_answer("first")
    await asyncio.sleep(2)
    reply.add_answer(" second")
    sink.fail_next(100, lambda: PlatformError("down"))
    await asyncio.wait_for(reply.finish(), timeout=60)  # returns: no endless retrying
    failed = [c for c in sink.writes if c.outcome is Outcome.FAILED]
    assert len(failed) == 4
    assert sink.texts() == ["first"]


async def test_a_rejected_message_is_not_retried_forever() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    sink.fail_next(1, lambda: MessageRejected("can't parse entities"))
    reply.add_answer("**bold")
    await asyncio.sleep(3)
    reply.add_answer(" text**")
    await reply.finish()
    assert sink.texts() == ["**bold text**"]
    assert reply.stats.failures == 1


async def test_a_defect_in_one_write_is_logged_and_the_reply_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    sink.fail_next(1, lambda: ValueError("a renderer bug"))
    reply.add_answer("first")
    await asyncio.sleep(3)
    reply.add_answer(" and second")
    await reply.finish()
    assert sink.texts() == ["first and second"]
    assert reply.stats.failures == 1
    (record,) = [r for r in caplog.records if r.exc_info]
    assert "unexpectedly" in record.getMessage()


# -- 429 -----------------------------------------------------------------------------------------


async def test_429_mid_stream_is_honoured_and_the_final_text_lands() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    answer = " ".join(f"w{i}" for i in range(400))
    await reply.start()
    reply.add_answer("Start")
    await asyncio.sleep(3)
    sink.rate_limit_next(1, retry_after=30)
    limited_at = now()
    await stream_answer(reply, tokens(" " + answer), 0.02)
    await reply.finish()

    limited = [c for c in sink.writes if c.outcome is Outcome.RATE_LIMITED]
    assert len(limited) == 1
    later = [c for c in sink.writes if c.at > limited[0].at]
    assert later, "nothing written after the 429"
    assert min(c.at for c in later) >= limited[0].at + 30 - 1e-9
    assert limited[0].at >= limited_at
    assert sink.texts() == ["Start " + answer]
    assert reply.stats.rate_limited == 1
    assert_sane(sink)


async def test_model_stream_is_read_while_a_429_is_waited_out() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    reply.add_answer("a")
    await asyncio.sleep(2)
    sink.rate_limit_next(1, retry_after=60)
    reply.add_answer("b")
    await asyncio.sleep(1.5)  # the write of "ab" hits the 429
    assert sink.writes[-1].outcome is Outcome.RATE_LIMITED

    started = now()
    pieces = [f" t{i}" for i in range(500)]
    await stream_answer(reply, pieces, 0.05)  # 25 s of tokens, all inside the 60 s wait
    assert now() - started == pytest.approx(25, abs=0.01), "the producer was held up"
    assert sink.writes[-1].outcome is Outcome.RATE_LIMITED, "wrote during retry_after"

    await reply.finish()
    after = [c for c in sink.writes if c.at > sink.writes[1].at]
    assert after[0].at >= sink.writes[1].at + 60 - 1e-9
    assert after[0].text == "ab" + "".join(pieces)  # one write with everything that came in
    assert len(after) == 1
    assert_sane(sink)


async def test_429s_before_the_end_do_not_use_up_the_final_attempts() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF, final_attempts=3)
    await reply.start()
    sink.rate_limit_next(5, retry_after=3)  # at 0, 3, 6, 9 s while streaming; 12 s at the end
    answer = "a long answer " * 40
    await stream_answer(reply, tokens(answer), 0.07)  # ~10 s
    await reply.finish()
    assert sink.texts() == [answer.strip()]
    assert reply.stats.rate_limited == 5
    assert_sane(sink)


# -- deleted messages ------------------------------------------------------------------------------


async def test_message_deleted_mid_stream_continues_in_a_new_message() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    reply.add_answer("Hello")
    await asyncio.sleep(2)
    first = sink.writes[0].ref
    assert first is not None
    sink.delete(first)
    await stream_answer(reply, [" there,", " how", " are", " you?"], 0.5)
    await reply.finish()
    assert sink.texts() == ["Hello there, how are you?"]
    assert first not in sink.shown
    assert [c.outcome for c in sink.writes].count(Outcome.GONE) == 1
    assert_sane(sink)


# -- rollover --------------------------------------------------------------------------------------


def long_answer() -> str:
    """About 12,000 characters of Markdown: prose with emoji and CJK, and long code blocks."""
    parts: list[str] = []
    for n in range(24):
        parts.append(f"Section {n} 👩‍💻: " + "Some prose with emoji 🇺🇦👍🏽 and 中文 text. " * 6)
        if n % 3 == 0:
            code = "".join(f"    value_{i} = compute({i})  # 🙂\n" for i in range(40))
            parts.append(f"```python\ndef f{n}():\n{code}```")
    return "\n\n".join(parts)


@pytest.mark.parametrize("unit", [LengthUnit.UTF16, LengthUnit.CODEPOINTS])
async def test_long_answer_rolls_over_into_several_messages(unit: LengthUnit) -> None:
    answer = long_answer()
    assert len(answer) > 12_000
    limits = SinkLimits(max_length=4096, unit=unit, min_interval=1.0)
    sink = RecordingSink(limits)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    await stream_answer(reply, tokens(answer, 8), 0.005)
    shown = await reply.finish()

    assert_sane(sink)
    assert len(shown) >= 3
    assert [plain(content) for content in shown] == sink.texts()
    assert all(measure(text, unit) <= limits.max_length for text in sink.texts())
    document = [Segment(ANSWER, answer.strip())]
    assert reassemble(document, shown) is not None, "text lost or repeated"
    for content in shown[:-1]:
        assert plain(content).count("```") % 2 == 0, "a code block left open across messages"
    for ref, content in sink.shown.items():  # a message sent as final never changes again
        finals = [c for c in sink.writes if c.ref == ref and c.final and c.outcome is Outcome.OK]
        assert all(call.content == content for call in finals)


async def test_full_messages_are_sent_as_final_while_the_answer_streams_on() -> None:
    sink = RecordingSink(SinkLimits(max_length=100, unit=LengthUnit.UTF16, min_interval=1.0))
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    await stream_answer(reply, tokens("many words " * 60), 0.1)
    first = sink.writes[0].ref
    assert first is not None
    assert sink.last_write_to(first).final  # frozen before finish() was even called
    await reply.finish()
    assert_sane(sink)


# -- SHOW_REASONING ------------------------------------------------------------------------------

SECRET = "SECRETPLAN "


async def reason_then_answer(reply: ReplyStream, answer: str = "The answer is 4.") -> None:
    """Twelve seconds of reasoning, then the answer."""
    await stream_reasoning(reply, [SECRET] * 120, 0.1)
    await stream_answer(reply, tokens(answer), 0.1)


async def test_progress_shows_thinking_seconds_and_never_the_reasoning() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.PROGRESS)
    await reply.start()
    await reason_then_answer(reply)
    await reply.finish()

    assert all("SECRETPLAN" not in call.text for call in sink.calls)
    assert REASONING not in kinds(sink)
    assert COLLAPSED not in kinds(sink)
    statuses = [c.text for c in sink.successful if c.content[0].kind is STATUS]
    assert statuses[0] == "💭 Thinking…"
    assert len(statuses) >= 3
    seconds = [int(text.split()[-2]) for text in statuses[1:]]
    assert seconds == sorted(seconds)
    assert seconds[-1] >= 9
    assert all(
        abs(call.at - int(call.text.split()[-2])) < 1.01
        for call in sink.successful
        if call.content[0].kind is STATUS and call.text != "💭 Thinking…"
    )
    assert sink.texts() == ["The answer is 4."]
    assert {c.ref for c in sink.writes} == {"m1"}  # the status line became the answer
    assert any(c.op is Op.TYPING for c in sink.calls)
    assert_sane(sink)


async def test_off_shows_nothing_until_the_answer() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    await stream_reasoning(reply, [SECRET] * 120, 0.1)
    assert sink.writes == []
    assert any(c.op is Op.TYPING for c in sink.calls)  # only "typing…"
    await stream_answer(reply, ["Four."], 0.1)
    await reply.finish()
    assert [c.text for c in sink.successful] == ["Four."]
    assert reply.reasoning == SECRET * 120


async def test_full_streams_the_reasoning_then_the_answer() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.FULL)
    await reply.start()
    await reason_then_answer(reply)
    await reply.finish()

    reasoning_writes = [c for c in sink.successful if c.content[0].kind is REASONING]
    assert len(reasoning_writes) >= 5
    lengths = [len(c.content[0].text) for c in reasoning_writes]
    assert lengths == sorted(lengths)  # it grows as the model thinks
    assert STATUS not in {c.content[0].kind for c in sink.successful[1:]}
    (final,) = sink.shown.values()
    assert [s.kind for s in final] == [REASONING, ANSWER]
    assert final[0].text == (SECRET * 120).strip()
    assert final[1].text == "The answer is 4."


@pytest.mark.parametrize("supported", [True, False])
async def test_collapsed_adds_the_reasoning_at_the_end_only_where_supported(
    supported: bool,
) -> None:
    limits = SinkLimits(4096, LengthUnit.UTF16, 1.0, supports_collapsed=supported)
    sink = RecordingSink(limits)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.COLLAPSED)
    await reply.start()
    await reason_then_answer(reply)
    before_finish = len(sink.calls)
    await reply.finish()

    assert all(COLLAPSED not in {s.kind for s in c.content} for c in sink.calls[:before_finish])
    assert REASONING not in kinds(sink)
    (final,) = sink.shown.values()
    if supported:
        assert [s.kind for s in final] == [ANSWER, COLLAPSED]
        assert final[1].text == (SECRET * 120).strip()
    else:
        assert [s.kind for s in final] == [ANSWER]
        assert all("SECRETPLAN" not in call.text for call in sink.calls)


async def test_notices_come_last_under_the_answer_and_collapsed_reasoning() -> None:
    sink = RecordingSink(SinkLimits(4096, LengthUnit.UTF16, 1.0, supports_collapsed=True))
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.COLLAPSED)
    await reply.start()
    await reason_then_answer(reply)
    reply.add_notice("⏹ Stopped.")
    reply.add_notice("ℹ️ Older messages were left out.")
    await reply.finish()
    (final,) = sink.shown.values()
    assert [s.kind for s in final] == [ANSWER, COLLAPSED, NOTICE, NOTICE]
    assert [s.text for s in final[2:]] == ["⏹ Stopped.", "ℹ️ Older messages were left out."]


async def test_notice_after_a_full_message_goes_whole_into_the_next_one() -> None:
    sink = RecordingSink(SinkLimits(max_length=60, unit=LengthUnit.UTF16, min_interval=1.0))
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    reply.add_answer("x" * 50)
    reply.add_notice("⏹ Stopped.")
    await reply.finish()
    assert sink.texts() == ["x" * 50, "⏹ Stopped."]


async def test_budget_spent_while_reasoning_replaces_the_status_with_a_notice() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.PROGRESS)
    await reply.start()
    await stream_reasoning(reply, [SECRET] * 50, 0.1)
    assert not reply.answer
    assert reply.has_output
    reply.add_notice("⚠️ The model used up its reply budget while thinking.")
    await reply.finish()
    assert sink.texts() == ["⚠️ The model used up its reply budget while thinking."]
    assert all("SECRETPLAN" not in call.text for call in sink.calls)


async def test_long_full_reasoning_rolls_over_before_the_answer() -> None:
    sink = RecordingSink(SinkLimits(max_length=500, unit=LengthUnit.UTF16, min_interval=1.0))
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.FULL)
    await reply.start()
    await stream_reasoning(reply, tokens("step by step, " * 150), 0.02)
    await stream_answer(reply, tokens("Done: 🎉 " * 10), 0.02)
    shown = await reply.finish()
    reasoning = ("step by step, " * 150).strip()
    answer = ("Done: 🎉 " * 10).strip()
    document = [Segment(REASONING, reasoning), Segment(ANSWER, answer)]
    assert reassemble(document, shown) is not None
    assert_sane(sink)


# -- lifecycle -------------------------------------------------------------------------------------


async def test_cancel_stops_writing_at_once() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.PROGRESS)
    await reply.start()
    await asyncio.sleep(5)
    await reply.cancel()
    count = len(sink.calls)
    reply.add_answer("too late")
    await asyncio.sleep(10)
    assert len(sink.calls) == count


async def test_a_notice_after_finish_lands_with_a_second_finish() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    await reply.start()
    reply.add_answer("Saved?")
    await reply.finish()
    reply.add_notice("⚠️ I couldn't save this exchange.")  # the store failed after the reply
    shown = await reply.finish()
    assert [[s.kind for s in content] for content in shown] == [[ANSWER, NOTICE]]
    assert sink.texts() == ["Saved?\n\n⚠️ I couldn't save this exchange."]
    assert_sane(sink)


async def test_finish_without_start_still_writes() -> None:
    sink = RecordingSink(TELEGRAM)
    reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF)
    reply.add_answer("  just the answer \n")
    shown = await reply.finish()
    assert [plain(content) for content in shown] == ["just the answer"]
    assert sink.texts() == ["just the answer"]
    assert reply.stats.sends == 1
    assert reply.stats.edits == 0


# -- everything at once, at random --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """One reply: what the model says and how fast, and what the platform does meanwhile."""

    mode: ShowReasoning
    limits: SinkLimits
    reasoning: str
    answer: str
    token_size: int
    token_interval: float
    faults: list[tuple[float, str, float]]  # (at, "429" or "delete", retry_after)
    notices: list[str]


scenarios = st.builds(
    Scenario,
    mode=st.sampled_from(ShowReasoning),
    limits=st.builds(
        SinkLimits,
        max_length=st.integers(80, 600),
        unit=st.sampled_from(LengthUnit),
        min_interval=st.sampled_from([0.05, 0.5, 1.0, 3.0]),
        supports_collapsed=st.booleans(),
        needs_final=st.booleans(),
    ),
    reasoning=st.sampled_from(["", "Let me think. " * 5, "SECRETPLAN " * 40]),
    answer=documents(120).map(lambda doc: doc.text),
    token_size=st.integers(2, 30),
    token_interval=st.sampled_from([0.001, 0.02, 0.3, 1.5]),
    faults=st.lists(
        st.tuples(
            st.floats(0, 30),
            st.sampled_from(["429", "429", "delete"]),
            st.sampled_from([0.5, 3.0, 35.0]),
        ),
        max_size=5,  # fewer than final_attempts in a row: the final text must land
    ),
    notices=st.lists(
        st.sampled_from(["⏹ Stopped.", "ℹ️ Older messages were left out."]), max_size=2
    ),
)


def on_virtual_time(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a fresh looptime loop (hypothesis drives a sync test)."""
    loop = looptime.new_event_loop()

    async def run() -> None:
        await main()

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


def expected_document(scenario: Scenario) -> list[Segment]:
    """What the finished reply must show, by SHOW_REASONING."""
    document: list[Segment] = []
    reasoning, answer = scenario.reasoning.strip(), scenario.answer.strip()
    if scenario.mode is ShowReasoning.FULL and reasoning:
        document.append(Segment(REASONING, reasoning))
    document.append(Segment(ANSWER, answer))
    collapsed = scenario.mode is ShowReasoning.COLLAPSED and scenario.limits.supports_collapsed
    if collapsed and reasoning:
        document.append(Segment(COLLAPSED, reasoning))
    document.extend(Segment(NOTICE, note) for note in scenario.notices)
    return document


async def play(scenario: Scenario, sink: RecordingSink) -> list[tuple[Segment, ...]]:
    """Stream the scenario into ``sink`` with its faults; return what the reply shows."""
    reply = ReplyStream(sink, show_reasoning=scenario.mode)

    async def platform() -> None:
        for at, kind, retry_after in sorted(scenario.faults):
            await asyncio.sleep(max(0.0, at - now()))
            if kind == "429":
                sink.rate_limit_next(1, retry_after)
            elif sink.shown:
                sink.delete(list(sink.shown)[-1])  # the user deletes the newest message

    faults = asyncio.create_task(platform())
    await reply.start()
    size, pause = scenario.token_size, scenario.token_interval
    await stream_reasoning(reply, tokens(scenario.reasoning, size), pause)
    await stream_answer(reply, tokens(scenario.answer, size), pause)
    for note in scenario.notices:
        reply.add_notice(note)
    shown = await reply.finish()
    faults.cancel()
    await asyncio.gather(faults, return_exceptions=True)
    return shown


@profile_settings(
    quick=15,  # each one is a whole reply; 400 pass when run by hand
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(scenarios)
def test_any_stream_with_any_faults_lands_whole_and_within_the_rules(scenario: Scenario) -> None:
    sink = RecordingSink(scenario.limits)
    shown: list[tuple[Segment, ...]] = []

    async def main() -> None:
        shown.extend(await play(scenario, sink))

    on_virtual_time(main)

    assert_sane(sink)
    assert reassemble(expected_document(scenario), shown) is not None, "text lost or repeated"
    deleted = any(call.outcome is Outcome.GONE for call in sink.writes) or any(
        kind == "delete" for _, kind, _ in scenario.faults
    )
    if not deleted:
        assert sink.texts() == [plain(content) for content in shown]
    for content in sink.shown.values():  # whatever survives shows final text, no status line
        assert content in shown
    if scenario.mode is not ShowReasoning.FULL:
        assert REASONING not in kinds(sink)
    if scenario.limits.needs_final:
        for ref in sink.shown:
            assert sink.last_write_to(ref).final
