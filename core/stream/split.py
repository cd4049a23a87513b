"""Where to cut a long text into messages: at a paragraph, line or word, never mid-character."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from core.sink import LengthUnit, measure

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


@dataclass(frozen=True, slots=True)
class Cut:
    """A head that fits, the rest (with a reopened code fence if needed)."""

    head: str
    rest: str
    consumed: int  # characters of the original text the head covers
    closing: str = ""  # added at the end of head to close a code fence
    reopening: str = ""  # added at the start of rest to reopen it


def open_fence(text: str) -> str | None:
    """The opening line of a code fence still open at the end of ``text``, if any."""
    opener: str | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if not match:
            continue
        if opener is None:
            opener = line.strip()
        elif _closes(match, opener):
            opener = None
    return opener


def _closes(match: re.Match[str], opener: str) -> bool:
    """A fence line closes the open fence if it uses the same character, is long enough, is bare."""
    run, info = match[1], match[2]
    return run[0] == opener[0] and len(run) >= _fence_len(opener) and not info.strip()


def _fence_len(opener: str) -> int:
    """Length of the backtick/tilde run that opened a fence."""
    return len(opener) - len(opener.lstrip(opener[0]))


def fit_prefix(text: str, room: int, unit: LengthUnit) -> int:
    """How many characters of ``text`` fit in ``room`` units (binary search; exact for UTF-16)."""
    if measure(text, unit) <= room:
        return len(text)
    if unit is LengthUnit.CODEPOINTS:
        return max(0, room)
    low, high = 0, min(len(text), max(0, room))
    while low < high:
        mid = (low + high + 1) // 2
        if measure(text[:mid], unit) <= room:
            low = mid
        else:
            high = mid - 1
    return low


def _safe_cut(text: str, index: int) -> int:
    """Move a hard cut left so it never splits a grapheme (ZWJ sequences, marks, VS, flags)."""
    while 0 < index < len(text) and _joins(text, index):
        index -= 1
    return index


def _joins(text: str, index: int) -> bool:
    """Whether ``text[index]`` belongs to the same grapheme as the character before it."""
    here, before = text[index], text[index - 1]
    return (
        here in "\u200d\ufe0e\ufe0f"
        or before == "\u200d"
        or unicodedata.category(here) in ("Mn", "Mc", "Me")  # combining and vowel signs
        or 0x1F3FB <= ord(here) <= 0x1F3FF  # skin-tone modifiers
        or 0xE0020 <= ord(here) <= 0xE007F  # tag sequences (flags)
        or (_is_flag_letter(here) and _flag_letters_before(text, index) % 2 == 1)
    )


def _is_flag_letter(char: str) -> bool:
    """A regional indicator: two of them make one flag."""
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _flag_letters_before(text: str, index: int) -> int:
    """How many regional indicators run up to ``index`` (odd: ``index`` is a flag's second)."""
    count = 0
    while index - count > 0 and _is_flag_letter(text[index - count - 1]):
        count += 1
    return count


def _best_boundary(text: str, limit: int) -> int:
    """The nicest place to cut within ``text[:limit]``: paragraph, then line, then space."""
    window = text[:limit]
    floor = limit // 3  # do not make tiny messages just to find a pretty boundary
    for separator in ("\n\n", "\n", " "):
        index = window.rfind(separator)
        if index > floor:
            return index + len(separator)
    return _safe_cut(text, limit)


def cut(text: str, room: int, unit: LengthUnit) -> Cut:
    """Split ``text`` so the head fits ``room``; a code fence open at the cut is closed/reopened.

    Only ``closing`` and ``reopening`` are added; no character of the source is lost or repeated.
    """
    fits = fit_prefix(text, room, unit)
    if fits >= len(text):
        return Cut(text, "", len(text))
    if fits <= 0:
        return Cut("", text, 0)
    index = _best_boundary(text, fits)
    fence = open_fence(text[:index])
    if fence is None:
        return Cut(text[:index], text[index:], index)
    return _cut_in_fence(text, room, unit, fence)


def _cut_in_fence(text: str, room: int, unit: LengthUnit, fence: str) -> Cut:
    """Cut where the closing fence still fits; nothing if the room cannot hold a closed block."""
    reserve = _closing_cost(fence)
    while True:
        closing_fits = fit_prefix(text, room - reserve, unit)
        if closing_fits <= len(fence) + reserve:
            return Cut("", text, 0)  # too little room to close the block: start a new message
        index = _best_boundary(text, closing_fits)
        start = _empty_block_start(text[:index])
        if start is not None:
            # The boundary is the end of the block's own opener line (a long info string, or a
            # first line too long to fit): the head would show an empty block, and a block
            # reopened at the top of a message would be reopened as it was, for ever. Start the
            # block in the next message; if it already starts this one, cut its content hard.
            if text[:start].strip():
                return Cut(text[:start], text[start:], start)
            index = _safe_cut(text, closing_fits)
            if _empty_block_start(text[:index]) is not None:
                return Cut("", text, 0)  # not even some content fits beside the opener
        fence = open_fence(text[:index]) or ""
        if not fence:
            return Cut(text[:index], text[index:], index)
        if _closing_cost(fence) <= reserve:
            break
        reserve = _closing_cost(fence)  # a longer run opened this block: reserve more, retry
    head, rest = text[:index], text[index:]
    closing = ("" if head.endswith("\n") else "\n") + fence[: _fence_len(fence)]
    reopening = fence + "\n"
    return Cut(head + closing, reopening + rest, index, closing, reopening)


def _empty_block_start(head: str) -> int | None:
    """Where ``head``'s last line starts if that line opens a code block still empty at the end."""
    if open_fence(head) is None:
        return None
    start = head.rfind("\n", 0, len(head) - 1) + 1
    return start if open_fence(head[:start]) is None else None


def _closing_cost(fence: str) -> int:
    """Room a closing fence line takes: a newline and the opening run's length."""
    return 1 + _fence_len(fence)
