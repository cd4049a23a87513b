"""Whether messages are exactly a document split up, allowing only the layout's documented edits.

MessageLayout (core/stream/layout.py) may add a fence closing at the end of a message and the
matching reopening at the start of the next, and may leave out a run of blank space that would
otherwise make a message of nothing but blank space. Anything else (a character lost, repeated,
moved or changed) makes ``lossless`` false.

Like tests/unit/test_split_layout.reassemble (whose fence-marker rule it reuses) this is a search:
"a\\n```" may be the head "a\\n" closed by "```" or the head "a" closed by "\\n```", and only the
next message tells which. It is iterative, so replies of thousands of messages are fine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence

import pyromark

from bots.telegram.render import CODE, FORMATTING, QUOTES, Entity
from core.sink import Content, Segment
from tests.unit.test_split_layout import _splits

State = tuple[int, int, int, str]  # message, segment, offset in it, carried fence reopening


def lossless(document: Sequence[Segment], messages: Sequence[Content]) -> bool:
    """Whether ``messages`` hold ``document`` exactly, up to fence markers and skipped blanks."""
    segments = [segment for segment in document if segment.text]
    stack: list[State] = [(0, 0, 0, "")]
    seen: set[State] = set()
    while stack:
        state = stack.pop()
        if state in seen:
            continue
        seen.add(state)
        message, segment, pos, carry = state
        if message == len(messages):
            if segment == len(segments) and not carry:
                return True
            continue
        for start_segment, start_pos in _starts(segments, segment, pos, carry):
            stack.extend(_place(segments, messages, message, start_segment, start_pos, carry))
    return False


def _starts(
    segments: Sequence[Segment], segment: int, pos: int, carry: str
) -> Iterator[tuple[int, int]]:
    """Where a message may begin: here, or past blank space the layout left out."""
    yield segment, pos
    if carry:
        return
    while segment < len(segments):
        rest = segments[segment].text[pos:]
        blank = len(rest) - len(rest.lstrip())
        if not blank:
            return
        if blank < len(rest):
            yield segment, pos + blank
            return
        segment, pos = segment + 1, 0
        yield segment, pos


def _place(
    segments: Sequence[Segment],
    messages: Sequence[Content],
    message: int,
    segment: int,
    pos: int,
    carry: str,
) -> Iterator[State]:
    """The states after message ``message`` if it starts at (segment, pos) with ``carry``."""
    content = list(messages[message])
    for index, placed in enumerate(content):
        if segment >= len(segments) or placed.kind is not segments[segment].kind:
            return
        text, lead = placed.text, carry if index == 0 else ""
        if not text.startswith(lead):
            return
        text = text[len(lead) :]
        remaining = segments[segment].text[pos:]
        if index < len(content) - 1:
            if text != remaining:
                return
            segment, pos = segment + 1, 0
            continue
        if text == remaining:
            yield message + 1, segment + 1, 0, ""
        for head, reopening in _splits(lead, text, remaining):
            yield message + 1, segment, pos + len(head), reopening


# Untrusted text must never turn into anything that notifies or acts. These name what it did.
WEB_SCHEME = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
_SLACK_WEB_LINK = re.compile(r"<(?:https?://|mailto:)[^<>\n]*>", re.IGNORECASE)
# The Markdown a Slack native stream may hold, read by a CommonMark parser (pulldown-cmark, which
# telegramify-markdown brings along) with the GitHub extensions Slack's Markdown knows.
_COMMONMARK = (
    pyromark.Options.ENABLE_TABLES
    | pyromark.Options.ENABLE_STRIKETHROUGH
    | pyromark.Options.ENABLE_TASKLISTS
    | pyromark.Options.ENABLE_FOOTNOTES
    | pyromark.Options.ENABLE_GFM
)


def slack_control_sequences(mrkdwn: str) -> list[str]:
    """Every `<…` in Slack text that is not one whole http(s)/mailto link: pings, mentions,
    channel links, other links. Empty for safe text."""
    return re.findall(r"<[^<\n]{0,24}", _SLACK_WEB_LINK.sub("", mrkdwn))


def stream_markdown_links(markdown: str) -> list[str]:
    """The targets of the links and images a CommonMark reader finds in native-stream Markdown
    that are not http(s)/mailto, plus any `<` (Slack's control sequences start with one)."""
    bad = re.findall(r"<[^<\n]{0,24}", markdown)
    for event in pyromark.events(markdown, options=_COMMONMARK):
        match event:
            case {"Start": {"Link": {"dest_url": url}}} | {"Start": {"Image": {"dest_url": url}}}:
                if not WEB_SCHEME.match(url):
                    bad.append(url)
    return bad


SAFE_TELEGRAM_TYPES = FORMATTING | QUOTES | CODE


def telegram_unsafe_entities(entities: Iterable[Entity]) -> list[Entity]:
    """Entities model text must not make: text_mention, custom_emoji, and text_link to anything
    but http(s)/mailto (tg://user?id=…, javascript:, …)."""
    return [
        e
        for e in entities
        if not (
            e.type in SAFE_TELEGRAM_TYPES
            or (e.type == "text_link" and e.url is not None and WEB_SCHEME.match(e.url))
        )
    ]
