"""Content → Slack text: the model's Markdown becomes mrkdwn, everything else is escaped as-is."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from markdown_to_mrkdwn import SlackMarkdownConverter

from core.markdown_breaks import settled_break
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
# Only web and mail links become Slack links: the converter's `<url|label>` would turn
# `[x](!here)` into `<!here|x>` (an @here ping), `[x](@U…)` into a user mention, `[x](#C…)` into
# a channel link, `[x](!subteam^S…)` into a group ping.
_WEB_LINK = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
_WEB_SCHEMES = ("http://", "https://", "mailto:")
_WEB_LINK_MARKUP = re.compile(r"<(?:https?://|mailto:)[^<>\n]*>", re.IGNORECASE)

_Replacement = str | Callable[[re.Match[str]], str]
_Rule = tuple[re.Pattern[str], _Replacement]


def _link(match: re.Match[str]) -> str:
    """`[label](url)` → `<url|label>` for a web or mail link; any other target stays text."""
    label, url = match[1], match[2]
    return f"<{url}|{label}>" if _WEB_LINK.match(url) else f"{label} ({url})"


def _image(match: re.Match[str]) -> str:
    """`![alt](url)` → `<url>` for a web or mail address; any other target stays text."""
    alt, url = match[1] or "", match[2]
    if _WEB_LINK.match(url):
        return f"<{url}>"
    return f"{alt} ({url})" if alt else url


_LINEAR_RULES: dict[str, _Rule] = {
    r"\[(.+?)\]\((.+?)\)": (re.compile(rf"\[({_LINK_TEXT})\]\(({_URL})\)"), _link),
    r"!\[.*?\]\((.+?)\)": (re.compile(rf"!\[({_LINK_TEXT})?\]\(({_URL})\)"), _image),
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


def _linear(rules: list[_Rule]) -> list[_Rule]:
    """The converter's rules with its link and image rules swapped for linear, safe ones."""
    return [_LINEAR_RULES.get(pattern.pattern, (pattern, repl)) for pattern, repl in rules]


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


def _only_web_links(mrkdwn: str) -> bool:
    """Whether every `<` in converted text opens a whole web or mail link (nothing that pings)."""
    return "<" not in _WEB_LINK_MARKUP.sub("", mrkdwn)


def markdown_to_mrkdwn(markdown: str) -> str:
    """Model Markdown → Slack mrkdwn; escaped text instead if conversion would drop content.

    Also escaped text if the conversion holds a `<` that is not one whole web or mail link: a
    safety net should a converter rule (or a new converter version) make `<!…>`, `<@…>`, `<#…>`.
    """
    converted = _converted(markdown)
    return converted if converted is not None else _escape_markdown(markdown).strip()


def _converted(markdown: str) -> str | None:
    """The converter's mrkdwn, or None when the safety net refuses it."""
    escaped = _escape_markdown(markdown)
    converted: str = _new_converter().convert(escaped)
    # Task boxes become ☐/☑ on purpose: the x is markup, not content.
    expected = _letters(_TASK.sub(r"\1- ☐ ", escaped))
    if _letters(converted) != expected or not _only_web_links(converted):
        return None
    return converted


class GrowingMrkdwn:
    """Renders an answer that grows on every edit: what comes before its last settled
    paragraph break (``core.markdown_breaks``) is converted once and kept, with the separator
    a paragraph after it gets, and only the text after the break is converted again.

    Converting and checking the whole message costs about 1.7 ms per edit at 4 KB. Each part
    passes the same safety net as a whole message; the result is the whole conversion's,
    character for character, unless the net would have refused the whole (tests/fuzz).
    """

    __slots__ = ("_kept", "_kept_source")

    def __init__(self) -> None:
        self._kept_source = ""
        self._kept: str | None = None

    def __call__(self, source: str) -> str:
        """``markdown_to_mrkdwn(source)``, from the kept part when the source starts with it."""
        cut = _slack_break(source)
        if cut <= 0:
            return markdown_to_mrkdwn(source)
        head = source[:cut]
        if head != self._kept_source:
            self._kept_source, self._kept = head, _lead(head)
        tail = _converted(source[cut + 2 :])
        if self._kept is None or tail is None or not tail[:1].strip():
            return markdown_to_mrkdwn(source)
        return self._kept + tail


_PROBE = "probe"  # a paragraph after a kept part, to learn the separator it gets


def _lead(head: str) -> str | None:
    """The head's mrkdwn and the separator before a paragraph that follows it, if that is
    how the converter ends it."""
    converted = _converted(f"{head}\n\n{_PROBE}")
    if converted is None or not converted.endswith(_PROBE):
        return None
    return converted[: -len(_PROBE)]


def _slack_break(source: str) -> int:
    """A settled break that also lies outside code fences as each reader here sees them:
    ``_escape_markdown``, the converter's line rule (on the text it strips first) and its table
    rule (which also takes indented fences)."""
    cut = settled_break(source)
    if cut <= 0:
        return cut
    head = source[:cut]
    readings = (
        head.split("\n"),
        head.lstrip().split("\n"),
        [line.strip() for line in head.split("\n")],
    )
    if any(sum(1 for line in lines if _FENCE.match(line)) % 2 for lines in readings):
        return -1
    return cut


def quote(text: str) -> str:
    """Escaped text as a Slack block quote, one marker per line."""
    return "\n".join(f"> {line}" if line else ">" for line in escape(text).split("\n"))


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message as mrkdwn, and as plain text for when Slack rejects the formatted one."""

    text: str
    plain: str


def render_segment(segment: Segment, answer: Callable[[str], str] = markdown_to_mrkdwn) -> str:
    """One segment as mrkdwn (Slack has no collapsed quote: collapsed reasoning is a quote);
    ``answer`` converts the answer's Markdown."""
    if segment.kind is SegmentKind.ANSWER:
        return answer(segment.text)
    if segment.kind in (SegmentKind.REASONING, SegmentKind.REASONING_COLLAPSED):
        return quote(f"{_REASONING_LABEL} {segment.text}")
    return escape(segment.text)


def render(
    content: Sequence[Segment], answer: Callable[[str], str] = markdown_to_mrkdwn
) -> Rendered:
    """A whole message for chat.postMessage / chat.update (a sink passes its ``GrowingMrkdwn``
    as ``answer``)."""
    parts = [render_segment(s, answer) for s in content if s.text.strip()]
    return Rendered(text="\n\n".join(p for p in parts if p), plain=escape(plain(content)))


def render_stream_markdown(content: Sequence[Segment]) -> str:
    """The appendable part of a message for native streams: Slack renders Markdown itself there.

    Status lines change every second and cannot be un-appended, so they are left out (the
    assistant status shows progress instead). Slack parses `<!here>`, `<@U…>` and `<url|label>`
    in Markdown too, so the text is escaped and links to anything but the web or mail are broken
    (see `stream_safe`).
    """
    parts = []
    for segment in content:
        if not segment.text.strip() or segment.kind is SegmentKind.STATUS:
            continue
        if segment.kind is SegmentKind.ANSWER:
            parts.append(stream_safe(segment.text, quotes=True))
        elif segment.kind is SegmentKind.NOTICE:
            parts.append(f"_{stream_safe(segment.text, growing=False)}_")
        else:
            lines = stream_safe(f"{_REASONING_LABEL} {segment.text}").split("\n")
            parts.append("\n".join(f"> {line}" for line in lines))
    return "\n\n".join(parts)


# Where a Markdown link's target starts: after `](`, or after the `]:` of a reference definition
# (`[label]: target` whose label opens the line, after quote and list markers, or continues from
# the line before). Both linear: no two parts of a pattern can match the same characters.
_INLINE_LINK = re.compile(r"\]\(")
_DEFINITION = re.compile(r"^(?:(?:[ \t>*+\-]|\d+[.)])*\[)?(?:\\.|[^\\\[\]\n])*\]:", re.MULTILINE)
_SPACE = re.compile(r"\s*")
_Wait = Literal["scheme", "target", "nothing"]
_LINK_BREAK = "\u200b"  # zero-width space: `]\u200b(` shows as written but is no link


def _web_target(text: str, start: int, *, wait: _Wait) -> bool:
    """Whether the link target after `start` is a web or mail address, or may still become one.

    Streamed text only grows, and breaking a link later would rewrite what was already appended,
    so a target the text ends in may wait: an inline link's while it may still become a web
    address ("ht", ``wait="scheme"``: the link needs its `)` anyway); a reference definition's
    only before it begins (``"target"``: it needs no closing mark, "h" would be a live link).
    """
    space = _SPACE.match(text, start)
    start = space.end() if space else start
    head = text[start : start + len("https://")].lower()
    if head.startswith(_WEB_SCHEMES):
        return True
    if start + len(head) < len(text):
        return False  # the target goes on: decided
    if wait == "scheme":
        return any(scheme.startswith(head) for scheme in _WEB_SCHEMES)
    return wait == "target" and not head


def _break_links(text: str, *, growing: bool) -> str:
    """A zero-width space after the `]` of every link whose target is not a web or mail address.

    The break goes after the `]`, which never moves earlier text: what a shorter text rendered
    stays a prefix of what the longer one renders (the native stream appends the difference).
    Text that is ``growing`` may end in a link still being written; other text (a notice, which
    its closing `_` follows) leaves nothing undecided. Links are found generously (also in code,
    where Slack would not link one): a false positive only costs an invisible character.
    """
    inline: _Wait = "scheme" if growing else "nothing"
    definition: _Wait = "target" if growing else "nothing"
    breaks = {
        m.start() + 1
        for m in _INLINE_LINK.finditer(text)
        if not _web_target(text, m.end(), wait=inline)
    }
    breaks.update(
        m.end() - 1
        for m in _DEFINITION.finditer(text)
        if not _web_target(text, m.end(), wait=definition)
    )
    if not breaks:
        return text
    pieces, last = [], 0
    for cut in sorted(breaks):
        pieces += [text[last:cut], _LINK_BREAK]
        last = cut
    pieces.append(text[last:])
    return "".join(pieces)


def stream_safe(text: str, *, quotes: bool = False, growing: bool = True) -> str:
    """Untrusted text as Markdown for a native stream: no ping, mention or non-web link.

    `&`, `<` and `>` are escaped (Slack's control characters); with ``quotes``, the `>` quote
    markers that open a line stay. Links to anything but http(s) and mailto are broken; text
    that is not ``growing`` may not end in a link still to be decided (see `_break_links`).
    """
    lines = []
    for line in _break_links(text, growing=growing).split("\n"):
        keep = len(line) - len(line.lstrip(" \t>")) if quotes else 0
        lines.append(line[:keep] + escape(line[keep:]))
    return "\n".join(lines)
