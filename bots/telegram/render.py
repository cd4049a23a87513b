"""Reply content → Telegram text + message entities (UTF-16 offsets), never markup to parse.

Sending entities instead of a parse mode means half-written Markdown can never fail a request:
whatever telegramify-markdown cannot read stays literal text. The entities are then made to
obey Telegram's nesting rules, so the server shows exactly what we meant.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from telegramify_markdown import convert
from telegramify_markdown.config import RenderConfig

from core.markdown_breaks import settled_break
from core.sink import LengthUnit, Segment, SegmentKind, measure

log = logging.getLogger(__name__)

SEPARATOR = "\n\n"  # between segments, as core.sink.plain() joins them

QUOTES = frozenset({"blockquote", "expandable_blockquote"})
CODE = frozenset({"pre", "code"})
FORMATTING = frozenset({"bold", "italic", "underline", "strikethrough", "spoiler"})
# What model text may turn into: formatting, quotes, code, and links to the web or mail. Nothing
# that names a user (text_mention, tg://user?id=… links), custom_emoji (the converter makes them
# from tg://emoji links and drops their id), or any other link scheme (tg://, javascript:, …).
SAFE_TYPES = FORMATTING | QUOTES | CODE
_WEB_URL = re.compile(r"(?:https?://|mailto:)", re.IGNORECASE)
# For two entities over the same range, the lower rank is the outer one.
_RANK = {"blockquote": 0, "expandable_blockquote": 0, "pre": 1, "text_link": 2, "code": 3}

# pyromark reads `<tag>` as HTML and telegramify drops HTML, so "x<y and y>z" would lose text.
# `<` is swapped for a private-use character of the same UTF-16 length before parsing and
# swapped back afterwards: offsets stay right and code blocks keep their `<`.
_LT_STANDINS = ("\ue000", "\ue001", "\ue002", "\uf8ff")

_CONFIG = RenderConfig.isolated()  # never the library's process-global config
# The library marks an open task "☑" (a ticked box) and a done one "✅": an open box for open
# tasks, as Slack shows them too.
_CONFIG.markdown_symbol.task_uncompleted = "\N{BALLOT BOX}"  # ☐


@dataclass(frozen=True, slots=True)
class Entity:
    """A Telegram MessageEntity, offsets and lengths in UTF-16 code units."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class Rendered:
    """What one Telegram message shows."""

    text: str
    entities: tuple[Entity, ...] = ()

    @property
    def length(self) -> int:
        """Length in UTF-16 code units, as Telegram counts it."""
        return measure(self.text, LengthUnit.UTF16)


def markdown(source: str) -> Rendered:
    """Markdown from the model → text + entities; on any converter failure, the literal text."""
    converted = _converted(source)
    # Markup only ("```\n```", a run of backticks) is shown as written, not as an empty
    # message Telegram refuses; so is whatever the converter could not read.
    return converted if converted is not None else Rendered(source.strip())


def _converted(source: str) -> Rendered | None:
    """The converter's text + entities, or None when it failed or left nothing to show."""
    standin = next((c for c in _LT_STANDINS if c not in source), None)
    prepared = source.replace("<", standin) if standin else source
    try:
        text, raw = convert(prepared, latex_escape=True, config=_CONFIG)
    except Exception:  # a converter bug must never cost the user the answer
        log.warning("markdown conversion failed; sending the text as it is", exc_info=True)
        return None
    if standin:
        text = text.replace(standin, "<")
    if not text.strip():
        return None
    entities = (
        Entity(e.type, e.offset, e.length, url=_restored(e.url, standin), language=e.language)
        for e in raw
        if e.length > 0
    )
    return Rendered(text, tuple(e for e in entities if harmless(e)))


class GrowingMarkdown:
    """Renders an answer that grows on every edit: what comes before its last settled
    paragraph break is rendered once and kept, and only the text after it again.

    Rendering the whole message on each edit costs about 240 µs per KB, and an answer is
    edited once a second while it grows to 4 KB. A break is settled when nothing written after
    it can change how the text before it renders (see ``settled_break``); the result is then
    the whole render's, character for character (tests/fuzz checks it on model-like text).
    """

    __slots__ = ("_kept", "_kept_source")

    def __init__(self) -> None:
        self._kept_source = ""
        self._kept: Rendered | None = None

    def __call__(self, source: str) -> Rendered:
        """``markdown(source)``, from the kept part when the source still starts with it."""
        cut = settled_break(source)
        if cut <= 0:
            return markdown(source)
        head_source = source[:cut]
        if self._kept is None or head_source != self._kept_source:
            self._kept_source, self._kept = head_source, _converted(head_source)
        head = self._kept
        tail = _converted(source[cut + 2 :])
        if head is None or tail is None or tail.text[:1].isspace():
            return markdown(source)  # the tail opens with a block that renders blank
        newlines = len(head.text) - len(head.text.rstrip("\n"))
        text = head.text + "\n" * max(0, 2 - newlines) + tail.text
        shift = measure(text, LengthUnit.UTF16) - tail.length
        shifted = (
            Entity(e.type, e.offset + shift, e.length, e.url, e.language) for e in tail.entities
        )
        return Rendered(text, (*head.entities, *shifted))


def _restored(url: str | None, standin: str | None) -> str | None:
    """A link's URL with the `<` stand-in swapped back, like the text."""
    return url.replace(standin, "<") if url and standin else url


def harmless(entity: Entity) -> bool:
    """Whether an entity may come from untrusted text: it must not mention, ping or run a link.

    The visible text stays either way; only the entity goes.
    """
    if entity.type == "text_link":
        return entity.url is not None and _WEB_URL.match(entity.url) is not None
    return entity.type in SAFE_TYPES


def render_segment(segment: Segment, answer: Callable[[str], Rendered] = markdown) -> Rendered:
    """One segment in its Telegram form; ``answer`` renders the answer's Markdown."""
    text = segment.text.strip()
    if not text:
        return Rendered("")
    if segment.kind is SegmentKind.ANSWER:
        return answer(segment.text)
    length = measure(text, LengthUnit.UTF16)
    if segment.kind is SegmentKind.REASONING:
        return Rendered(text, (Entity("blockquote", 0, length),))
    if segment.kind is SegmentKind.REASONING_COLLAPSED:
        return Rendered(text, (Entity("expandable_blockquote", 0, length),))
    if segment.kind is SegmentKind.NOTICE:
        return Rendered(text, (Entity("italic", 0, length),))
    return Rendered(text)  # STATUS and anything new: plain


def render(content: Sequence[Segment], answer: Callable[[str], Rendered] = markdown) -> Rendered:
    """A whole message: segments joined like `core.sink.plain`, entities shifted and checked
    (a sink passes its ``GrowingMarkdown`` as ``answer``)."""
    parts: list[str] = []
    entities: list[Entity] = []
    offset = 0
    for segment in content:
        piece = render_segment(segment, answer)
        if not piece.text:
            continue
        if parts:
            parts.append(SEPARATOR)
            offset += len(SEPARATOR)
        parts.append(piece.text)
        entities.extend(
            Entity(e.type, e.offset + offset, e.length, e.url, e.language) for e in piece.entities
        )
        offset += piece.length
    return Rendered("".join(parts), sanitize(entities))


def _may_contain(outer: str, inner: str) -> bool:
    """Telegram's nesting rules (Bot API 'Formatting options', TDLib's FormattedText)."""
    if outer in CODE:
        return False
    if outer in QUOTES:
        return inner not in QUOTES
    return inner in FORMATTING or outer in FORMATTING


def sanitize(entities: Sequence[Entity]) -> tuple[Entity, ...]:
    """Sort entities and drop the ones Telegram would reject or silently discard.

    Kept: entities that are disjoint or properly nested. Dropped: partial overlaps, anything
    inside pre/code, a quote inside a quote, link-like entities inside each other, and anything
    untrusted text must not make (see `harmless`).
    """
    ordered = sorted(
        (e for e in entities if e.length > 0 and e.offset >= 0 and harmless(e)),
        key=lambda e: (e.offset, -e.length, _RANK.get(e.type, 9)),
    )
    kept: list[Entity] = []
    open_: list[Entity] = []  # ancestors of the current position, outermost first
    for entity in ordered:
        while open_ and open_[-1].end <= entity.offset:
            open_.pop()
        if open_ and open_[-1].end < entity.end:
            continue  # partial overlap
        if not all(_may_contain(outer.type, entity.type) for outer in open_):
            continue
        kept.append(entity)
        open_.append(entity)
    return tuple(kept)
