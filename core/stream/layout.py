"""Lays a growing document out as messages; once a message is full it never changes again."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.sink import Content, LengthUnit, Segment, measure
from core.stream.split import Cut, cut, fit_prefix

SEPARATOR_COST = 2  # sinks join segments of one message with a blank line


@dataclass(slots=True)
class _Cursor:
    """Where the unfrozen tail starts: segment index, offset in it, and a reopened code fence."""

    segment: int = 0
    offset: int = 0
    carry: str = ""


class MessageLayout:
    """Turns a segment list into messages under a length limit, freezing full messages.

    The document may only grow at its end (and its last segments may be replaced while they
    are still in the unfrozen tail): that is how a reply streams.

    The messages hold the document exactly, with two exceptions: a code block open at a cut is
    closed and reopened (``Cut.closing``/``Cut.reopening``), and a run of blank space that would
    start a message with nothing but blank space is left out (platforms refuse blank messages
    and trim a message's leading blank space anyway).
    """

    def __init__(self, max_length: int, unit: LengthUnit) -> None:
        self._limit = max(16, max_length)
        self._unit = unit
        self._frozen: list[Content] = []
        self._cursor = _Cursor()

    @property
    def frozen(self) -> list[Content]:
        """Messages that are complete."""
        return self._frozen

    def messages(self, document: Sequence[Segment]) -> list[Content]:
        """All messages for ``document``: the frozen ones, then the ones the tail needs."""
        while True:
            tail = self._tail(document)
            placed, overflow = self._pack(tail)
            if overflow is None:
                return [*self._frozen, placed] if placed else list(self._frozen)
            if placed:  # nothing is placed when blank space was skipped
                self._frozen.append(placed)
            self._cursor = overflow

    def _tail(self, document: Sequence[Segment]) -> list[Segment]:
        """The document from the cursor on."""
        cursor = self._cursor
        if cursor.segment >= len(document):
            return []
        first = document[cursor.segment]
        head = Segment(first.kind, cursor.carry + first.text[cursor.offset :])
        return [head, *document[cursor.segment + 1 :]]

    def _pack(self, tail: list[Segment]) -> tuple[Content, _Cursor | None]:
        """Fill one message from ``tail``; return it and where the next one starts if it is full."""
        placed: list[Segment] = []
        used = 0
        for index, segment in enumerate(tail):
            cost = SEPARATOR_COST if placed else 0
            size = measure(segment.text, self._unit)
            if used + cost + size <= self._limit:
                if segment.text:
                    placed.append(segment)
                    used += cost + size
                continue
            room = self._limit - used - cost
            piece = cut(segment.text, room, self._unit)
            if placed and not _tidy(piece, segment.text):
                return tuple(placed), self._advance(index, 0, "")
            if not piece.head.strip():  # an empty message cannot be sent
                blank = len(segment.text) - len(segment.text.lstrip())
                if blank:  # a message of only blank space would be refused (and shows nothing)
                    return (), self._advance(index, blank, "")
                piece = _forced_cut(segment.text, self._limit, self._unit)  # a hard cut
            placed.append(Segment(segment.kind, piece.head))
            return tuple(placed), self._advance(index, piece.consumed, piece.reopening)
        return tuple(placed), None

    def _advance(self, tail_index: int, consumed: int, reopening: str) -> _Cursor:
        """Translate a position in the tail back into a document cursor."""
        cursor = self._cursor
        if tail_index == 0:
            source_used = max(0, consumed - len(cursor.carry))
            return _Cursor(cursor.segment, cursor.offset + source_used, reopening)
        return _Cursor(cursor.segment + tail_index, consumed, reopening)


def _tidy(piece: Cut, text: str) -> bool:
    """A cut at a word boundary; a segment after others moves on rather than split mid-word."""
    return piece.consumed > 0 and bool(piece.head.strip()) and text[piece.consumed - 1].isspace()


def _forced_cut(text: str, limit: int, unit: LengthUnit) -> Cut:
    """Fill a fresh message; split a grapheme only if it alone is longer than a message."""
    piece = cut(text, limit, unit)
    if piece.consumed > 0:
        return piece
    size = max(1, fit_prefix(text, limit, unit))
    return Cut(text[:size], text[size:], size)
