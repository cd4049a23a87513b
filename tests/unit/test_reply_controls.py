"""Buttons under a streamed reply: Stop rides on the stream's own writes, the final write swaps
it for the final buttons, and a reply written over an earlier one reuses its messages."""

from __future__ import annotations

import asyncio

import pytest

from core.sink import NO_CONTROLS, Button, Control, Controls, LengthUnit, SinkLimits, plain
from core.stream.reply import ReplyStream
from tests.support.sinks import Op, RecordingSink

pytestmark = pytest.mark.looptime

LIMITS = SinkLimits(max_length=200, unit=LengthUnit.UTF16, min_interval=1.0)
STOP = Controls("a1", (Button(Control.STOP, "Stop"),))
REGENERATE = Controls("a1", (Button(Control.REGENERATE, "Regenerate"),))


async def test_stop_rides_on_the_writes_and_the_final_write_swaps_it() -> None:
    sink = RecordingSink(LIMITS)
    reply = ReplyStream(sink, controls=STOP)
    await reply.start()
    for word in ("one ", "two ", "three "):
        reply.add_answer(word)
        await asyncio.sleep(1.5)
    reply.end_with(REGENERATE)
    await reply.finish()
    (ref,) = sink.shown
    assert sink.buttons[ref] == REGENERATE
    writes = sink.successful
    assert all(call.op is Op.SEND or call.ref == ref for call in writes)
    assert len(writes) == 4  # the first write, two growing edits, and the final one: no extra


async def test_only_the_newest_message_of_a_long_reply_carries_buttons() -> None:
    sink = RecordingSink(LIMITS)
    reply = ReplyStream(sink, controls=STOP)
    await reply.start()
    reply.add_answer(" ".join(f"word{i}" for i in range(80)))
    reply.end_with(REGENERATE)
    await reply.finish()
    refs = list(sink.shown)
    assert len(refs) > 1
    assert [sink.buttons[ref] for ref in refs] == [NO_CONTROLS] * (len(refs) - 1) + [REGENERATE]


async def test_a_rewrite_reuses_the_earlier_messages_and_retires_the_rest() -> None:
    sink = RecordingSink(LIMITS)
    first = ReplyStream(sink, controls=STOP)
    await first.start()
    first.add_answer(" ".join(f"word{i}" for i in range(80)))
    await first.finish()
    old = first.refs
    assert len(old) > 1
    second = ReplyStream(sink, controls=STOP, reuse=old)
    await second.start()
    second.add_answer("short now")
    second.end_with(REGENERATE)
    await second.finish()
    assert list(sink.shown) == old  # nothing new was posted
    assert plain(sink.shown[old[0]]) == "short now"
    assert sink.buttons[old[0]] == REGENERATE
    assert all("replaced" in plain(sink.shown[ref]) for ref in old[1:])
    assert second.refs == old[:1]
