"""Splitting and rollover: any text, streamed in any chunks, lands within every platform limit.

The product's MessageLayout and ReplyStream run on the product's own limits (Telegram: 4,000
UTF-16 units declared per message; Slack: SLACK_MESSAGE_CHARS code points) and on small limits
that force many rollovers. Whatever the chunking, every message is within its limit and not
blank, a full message never changes again, and the messages put together are exactly the
reply: nothing lost, nothing twice, except the documented fence close/reopen markers (and blank
space that would have made a blank message, which no platform accepts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import hypothesis.strategies as st
from hypothesis import HealthCheck, example, given

from core.settings import ShowReasoning
from core.sink import Content, LengthUnit, Segment, SegmentKind, SinkLimits, measure, plain
from core.stream.layout import MessageLayout
from core.stream.reply import ReplyStream
from tests.fuzz.checks import lossless
from tests.fuzz.profiles import profile_settings
from tests.fuzz.strategies import (
    bomb,
    chunked,
    cut_points,
    model_text,
    on_virtual_time,
    product_limits,
    small_limits,
)
from tests.fuzz.watchdog import time_limit
from tests.support.sinks import Outcome, RecordingSink

ANSWER, REASONING = SegmentKind.ANSWER, SegmentKind.REASONING
COLLAPSED, NOTICE = SegmentKind.REASONING_COLLAPSED, SegmentKind.NOTICE

texts = model_text(max_pieces=80, max_repeat=60) | bomb(9_000)
LAYOUT_SECONDS = 2.0  # the layout runs on every edit: it must stay far below this
REPLY_SECONDS = 30.0  # a whole reply on virtual time: a second or so at most


def assert_sendable(messages: Sequence[Content], limits: SinkLimits) -> None:
    """Each message fits the platform's count in its own unit and has something to show."""
    for content in messages:
        text = plain(content)
        assert measure(text, limits.unit) <= limits.max_length, (len(text), limits)
        assert text.strip(), "a blank message"


# -- MessageLayout alone: many examples, any growth ------------------------------------------------


@profile_settings(quick=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, cut_points, small_limits | product_limits)
@example("`" * 3 + "\n" + "😀" * 3000, [1, 5, 3000], SinkLimits(4000, LengthUnit.UTF16))
@example("e\u0301" * 3000, [2, 4, 999], SinkLimits(3900))
# Found by this target: a fence whose opener line fills a third of the room made the layout
# loop for ever (a reopened empty block each time), growing its frozen list without bound.
@example("```" + "x" * 1_400 + "\n" + "y" * 6_000, [], SinkLimits(4000, LengthUnit.UTF16))
@example("````\n" + "x" * 40, [], SinkLimits(16))
# Found by this target: a run of blank space longer than a message became a blank message,
# which every platform refuses.
@example("word" + " " * 9_000 + "end", [], SinkLimits(4000, LengthUnit.UTF16))
@example("".join("  " * i + "- item\n" for i in range(12)), [], SinkLimits(16))
def test_layout_of_a_streamed_answer(text: str, cuts: list[int], limits: SinkLimits) -> None:
    layout = MessageLayout(limits.max_length, limits.unit)
    frozen: list[Content] = []
    shown = ""
    for chunk in chunked(text, cuts):
        shown += chunk
        with time_limit(LAYOUT_SECONDS, "laying out one state of the reply"):
            messages = layout.messages([Segment(ANSWER, shown.strip())])
        assert_sendable(messages, limits)
        assert layout.frozen[: len(frozen)] == frozen, "a full message changed"
        assert messages[: len(layout.frozen)] == layout.frozen
        assert len(messages) - len(layout.frozen) <= 1, "only the last message is open"
        frozen = list(layout.frozen)
    document = [Segment(ANSWER, text.strip())]
    final = layout.messages(document)
    assert lossless(document, final), "text lost or repeated"


# -- ReplyStream end to end on virtual time --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stream:
    """One reply: what the model sends, in which pieces, how fast, into which platform."""

    mode: ShowReasoning
    limits: SinkLimits
    reasoning: str
    answer: str
    reasoning_cuts: list[int]
    answer_cuts: list[int]
    interval: float
    notices: list[str]
    rate_limits: list[float]  # retry_after of 429s the platform answers along the way


streams = st.builds(
    Stream,
    mode=st.sampled_from(ShowReasoning),
    limits=small_limits | product_limits,
    reasoning=model_text(max_pieces=40, max_repeat=20),
    answer=texts.filter(str.strip),
    reasoning_cuts=cut_points,
    answer_cuts=cut_points,
    interval=st.sampled_from([0.001, 0.05, 0.6, 2.5]),
    notices=st.lists(
        st.sampled_from(["⏹ Stopped.", "ℹ️ Older messages were left out."]), max_size=2
    ),
    rate_limits=st.lists(st.sampled_from([0.5, 3.0, 30.0]), max_size=3),
)


def expected_document(stream: Stream) -> list[Segment]:
    """What the finished reply must show, by SHOW_REASONING."""
    reasoning, answer = stream.reasoning.strip(), stream.answer.strip()
    document: list[Segment] = []
    if stream.mode is ShowReasoning.FULL and reasoning:
        document.append(Segment(REASONING, reasoning))
    document.append(Segment(ANSWER, answer))
    if stream.mode is ShowReasoning.COLLAPSED and stream.limits.supports_collapsed and reasoning:
        document.append(Segment(COLLAPSED, reasoning))
    document.extend(Segment(NOTICE, note) for note in stream.notices)
    return document


async def play(stream: Stream, sink: RecordingSink) -> list[Content]:
    """Feed the reply in its chunks at its pace; return what the messages finally show."""
    reply = ReplyStream(sink, show_reasoning=stream.mode)
    await reply.start()
    for chunk in chunked(stream.reasoning, stream.reasoning_cuts):
        reply.add_reasoning(chunk)
        await asyncio.sleep(stream.interval)
    for index, chunk in enumerate(chunked(stream.answer, stream.answer_cuts)):
        if index < len(stream.rate_limits):
            sink.rate_limit_next(1, stream.rate_limits[index])
        reply.add_answer(chunk)
        await asyncio.sleep(stream.interval)
    for note in stream.notices:
        reply.add_notice(note)
    return await reply.finish()


@profile_settings(
    quick=40,  # each example is a whole streamed reply
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(streams)
def test_reply_stream_lands_whole_and_within_limits(stream: Stream) -> None:
    sink = RecordingSink(stream.limits)
    shown: list[Content] = []

    async def main() -> None:
        shown.extend(await play(stream, sink))

    with time_limit(REPLY_SECONDS, "streaming one reply"):
        on_virtual_time(main)

    assert sink.violations == [], "written faster than the platform allows"
    rejected = [call for call in sink.writes if call.outcome is Outcome.REJECTED]
    assert rejected == [], "the platform refused a message (over its limit, or blank)"
    assert_sendable(shown, stream.limits)
    assert lossless(expected_document(stream), shown), "text lost or repeated"
    assert sink.texts() == [plain(content) for content in shown], "a message shows stale text"
    if stream.mode is not ShowReasoning.FULL:
        assert all(s.kind is not REASONING for c in sink.writes for s in c.content)
