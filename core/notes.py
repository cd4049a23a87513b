"""A short note from Parley into a sink (a refusal, an error): paced, and never raising."""

from __future__ import annotations

import logging

from core.errors import BotError
from core.sink import MessageSink, Segment, SegmentKind

log = logging.getLogger(__name__)


async def say(sink: MessageSink, text: str) -> None:
    """Send one notice as its own message; a platform failure here is only logged."""
    if not text:
        return
    try:
        await sink.pacer.acquire()
        await sink.send((Segment(SegmentKind.NOTICE, text),), final=True)
    except BotError as exc:
        log.warning("could not tell the user: %s", exc)
