"""Content → Slack text: the model's Markdown becomes mrkdwn, everything else is escaped as-is."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_to_mrkdwn import SlackMarkdownConverter

from core.sink import Segment, SegmentKind, plain

_FENCE = re.compile(r"^```(\w*)\s*$")  # the converter's own fence rule, so both agree
_IMAGE = re.compile(r"!\[([^\]]+)\]\(([^)\s]+)\)")
_TASK = re.compile(r"^(\s*)- \[([ xX])\] ", re.MULTILINE)
_LONE_STAR = re.compile(r"(?<=\S )\*(?= )")  # "2 * 3 * 4": arithmetic, not emphasis
_STAR_HOLD = "\ue000"  # private-use placeholder while the converter runs
_REASONING_LABEL = "💭"
# The converter's own link and image rules, `\[(.+?)\]\((.+?)\)` and `!\[.*?\]\((.+?)\)`, take
# cubic time on a line of unclosed links: "[a](" × 1,000 took 12 s, blocking the event loop on
# every edit of the message. These match the same links in linear time: link text may hold one
# level of [brackets] and a URL one level of (parentheses) (Wikipedia-style URLs now work too);
# neither spans a line.
_LINK_TEXT = r"(?:[^\[\]\n]|\[[^\[\]\n]*\])+"
_URL = r"(?:[^()\n]|\([^()\n]*\))+"
_LINEAR_RULES = {
    r"\[(.+?)\]\((.+?)\)": re.compile(rf"\[({_LINK_TEXT})\]\(({_URL})\)"),
    r"!\[.*?\]\((.+?)\)": re.compile(rf"!\[(?:{_LINK_TEXT})?\]\(({_URL})\)"),
}


def escape(text: str) -> str:
    """Slack's three control characters; also keeps the model from writing <!channel> pings."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    """What a Slack client shows for escaped text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _escape_markdown(markdown: str) -> str:
    """Escape everything except a quote marker at the start of a line outside code fences."""
    lines = []
    in_fence = False
    for line in markdown.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
            lines.append(line)
        elif not in_fence and line.startswith(">"):
            lines.append(">" + escape(line[1:]))
        else:
            lines.append(escape(line))
    return "\n".join(lines)


def _image_as_link(line: str) -> str:
    """The converter drops an image's alt text; a link keeps it."""
    return _IMAGE.sub(r"[\1](\2)", line)


def _hold_lone_stars(line: str) -> str:
    """The converter would italicise "a * b * c"; Slack itself shows those stars literally."""
    return _LONE_STAR.sub(_STAR_HOLD, line)


def _release_lone_stars(line: str) -> str:
    """Put the held stars back after conversion."""
    return line.replace(_STAR_HOLD, "*")


def _linear(rules: list[tuple[re.Pattern[str], str]]) -> list[tuple[re.Pattern[str], str]]:
    """The converter's rules with the backtracking-prone ones swapped for linear-time ones."""
    return [(_LINEAR_RULES.get(pattern.pattern, pattern), repl) for pattern, repl in rules]


def _new_converter() -> SlackMarkdownConverter:
    """One converter per render: it keeps per-call state (fence tracking, table placeholders)."""
    converter = SlackMarkdownConverter()
    converter.patterns = _linear(converter.patterns)
    converter.inline_patterns = _linear(converter.inline_patterns)  # table cells
    converter.register_plugin("image_as_link", _image_as_link, priority=10, timing="before")
    converter.register_plugin("hold_stars", _hold_lone_stars, priority=20, timing="before")
    converter.register_plugin("release_stars", _release_lone_stars, priority=90, timing="after")
    return converter


def _letters(text: str) -> Counter[str]:
    """The characters a rendering must never lose (markup symbols may change)."""
    return Counter(c for c in text if c.isalnum())


def markdown_to_mrkdwn(markdown: str) -> str:
    """Model Markdown → Slack mrkdwn; escaped text instead if conversion would drop content."""
    escaped = _escape_markdown(markdown)
    converted: str = _new_converter().convert(escaped)
    # Task boxes become ☐/☑ on purpose: the x is markup, not content.
    expected = _letters(_TASK.sub(r"\1- ☐ ", escaped))
    if _letters(converted) != expected:
        return escaped.strip()
    return converted


def quote(text: str) -> str:
    """Escaped text as a Slack block quote, one marker per line."""
    return "\n".join(f"> {line}" if line else ">" for line in escape(text).split("\n"))


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message as mrkdwn, and as plain text for when Slack rejects the formatted one."""

    text: str
    plain: str


def render_segment(segment: Segment) -> str:
    """One segment as mrkdwn (Slack has no collapsed quote: collapsed reasoning is a quote)."""
    if segment.kind is SegmentKind.ANSWER:
        return markdown_to_mrkdwn(segment.text)
    if segment.kind in (SegmentKind.REASONING, SegmentKind.REASONING_COLLAPSED):
        return quote(f"{_REASONING_LABEL} {segment.text}")
    return escape(segment.text)


def render(content: Sequence[Segment]) -> Rendered:
    """A whole message for chat.postMessage / chat.update."""
    parts = [render_segment(s) for s in content if s.text.strip()]
    return Rendered(text="\n\n".join(p for p in parts if p), plain=escape(plain(content)))


def render_stream_markdown(content: Sequence[Segment]) -> str:
    """The appendable part of a message for native streams: Slack renders Markdown itself there.

    Status lines change every second and cannot be un-appended, so they are left out (the
    assistant status shows progress instead).
    """
    parts = []
    for segment in content:
        if not segment.text.strip() or segment.kind is SegmentKind.STATUS:
            continue
        if segment.kind is SegmentKind.ANSWER:
            parts.append(segment.text)
        elif segment.kind is SegmentKind.NOTICE:
            parts.append(f"_{segment.text}_")
        else:
            lines = f"{_REASONING_LABEL} {segment.text}".split("\n")
            parts.append("\n".join(f"> {line}" for line in lines))
    return "\n\n".join(parts)
