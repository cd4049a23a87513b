"""cut() and MessageLayout: within the limit in either unit, lossless, at nice boundaries."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given

from core.sink import Content, LengthUnit, Segment, SegmentKind, measure, plain
from core.stream.layout import MessageLayout
from core.stream.split import Cut, cut, fit_prefix, open_fence
from tests.fuzz.profiles import profile_settings

UNITS = [LengthUnit.UTF16, LengthUnit.CODEPOINTS]
ANSWER, REASONING, NOTICE = SegmentKind.ANSWER, SegmentKind.REASONING, SegmentKind.NOTICE

# Graphemes of several code points: a cut inside one shows broken characters to the user.
CLUSTERS = [
    "👩‍💻",  # ZWJ sequence
    "👨‍👩‍👧‍👦",  # long ZWJ sequence (11 UTF-16 units)
    "🧑🏿‍🚀",  # skin tone inside a ZWJ sequence
    "👍🏽",  # skin tone modifier
    "❤️",  # variation selector
    "é",  # e + combining acute
    "ñ̃",  # two combining marks
    "🇺🇦",  # regional-indicator flag
    "🇯🇵",
    "🏴󠁧󠁢󠁥󠁮󠁧󠁿",  # tag-sequence flag
    "कि",  # Devanagari consonant + spacing vowel sign
]
# Runs of single-code-point graphemes: any cut between them is fine.
PLAIN = [
    "alpha",
    "beta,",
    "gamma.",
    "x",
    "中文",
    "日本語の文",
    "שלום",
    "مرحبا",
    "𝄞",
    "𝔘𝔫𝔦",
    "🙂",
    "naïve",
    "https://example.com/a/b?c=d",
]


@dataclass(frozen=True, slots=True)
class Doc:
    """A generated text and the positions a cut must never fall on (inside a grapheme)."""

    text: str
    inside: frozenset[int]


Atom = tuple[str, bool]  # a piece of text, and whether it is one grapheme of several code points

_WORDS: list[tuple[Atom, ...]] = [
    *(((word, False),) for word in PLAIN),
    *(((cluster, True),) for cluster in CLUSTERS),
]
# Texts are drawn as lists of these tokens (cheap to generate): words, spaces, line and paragraph
# breaks, fence lines, and some long runs that leave no boundary but a hard cut.
TOKENS: list[tuple[Atom, ...]] = [
    *_WORDS,
    *_WORDS,
    *[((" ", False),)] * 12,
    *[(("\n", False),)] * 3,
    *[(("\n\n", False),)] * 3,
    (("\n```python\n", False),),
    (("\n```\n", False),),
    (("\n````\n", False),),
    (("\n~~~\n", False),),
    (("\n    ", False),),  # indented code
    (("w" * 150, False),),
    (("https://example.com/" + "x" * 90, False),),
    (("中文" * 60, False),),
    (("👩‍💻", True),) * 40,
    (("🇺🇦", True),) * 30,
    (("é", True),) * 50,
]


def _doc(tokens: list[tuple[Atom, ...]]) -> Doc:
    """Join tokens, remembering the inside of every multi-code-point grapheme."""
    text, inside = "", set[int]()
    for token in tokens:
        for piece, indivisible in token:
            if indivisible:
                inside.update(range(len(text) + 1, len(text) + len(piece)))
            text += piece
    lead = len(text) - len(text.lstrip())
    text = text.strip()  # as the reply stream shows it
    return Doc(text, frozenset(i - lead for i in inside if 0 < i - lead < len(text)))


def documents(max_tokens: int = 400) -> st.SearchStrategy[Doc]:
    """Prose, code blocks and long runs in any mix (fences may be left open); never blank."""
    sizes = st.integers(1, max_tokens)  # spread sizes out: lists alone stay short
    tokens = sizes.flatmap(lambda n: st.lists(st.sampled_from(TOKENS), min_size=n, max_size=n))
    return tokens.map(_doc).filter(lambda doc: bool(doc.text))


def fence_run(opener: str) -> str:
    """The backtick/tilde run of a fence opener."""
    return opener[: len(opener) - len(opener.lstrip(opener[0]))]


# -- open_fence ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("no code", None),
        ("```python\nx = 1\n```\nafter", None),
        ("```python\nx = 1", "```python"),
        ("text\n```\ncode\n", "```"),
        ("~~~\n```\nstill code", "~~~"),  # backticks do not close a tilde fence
        ("````\n```\nstill code", "````"),  # a shorter run does not close
        ("```\ncode\n`````\n", None),  # a longer bare run does
        ("```\n```js\n", "```"),  # a run with an info string does not close
        ("   ```js\ncode", "```js"),  # up to three spaces of indent
        ("    ```js\ncode", None),  # four spaces: an indented code line, not a fence
        ("```a\n```\n```b\nx", "```b"),
    ],
)
def test_open_fence(text: str, expected: str | None) -> None:
    assert open_fence(text) == expected


# -- cut ------------------------------------------------------------------------------------------


def assert_lossless(text: str, piece: Cut) -> None:
    """Only the fence markers are added; without them the pieces are the source."""
    source_head = piece.head[: len(piece.head) - len(piece.closing)]
    assert piece.head == source_head + piece.closing
    assert piece.rest.startswith(piece.reopening)
    assert source_head == text[: piece.consumed]
    assert piece.rest[len(piece.reopening) :] == text[piece.consumed :]


@profile_settings(quick=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(150), st.integers(40, 600), st.sampled_from(UNITS))
def test_cut_fits_and_loses_nothing(doc: Doc, room: int, unit: LengthUnit) -> None:
    piece = cut(doc.text, room, unit)
    assert measure(piece.head, unit) <= room
    assert_lossless(doc.text, piece)
    if measure(doc.text, unit) <= room:
        assert piece == Cut(doc.text, "", len(doc.text))
    else:
        assert 0 < piece.consumed < len(doc.text), "no progress"


@profile_settings(quick=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(150), st.integers(40, 600), st.sampled_from(UNITS))
@example(Doc("🇺🇦🇯🇵" * 40, frozenset(range(1, 160, 2))), 41, LengthUnit.CODEPOINTS)
@example(Doc("किकि" * 40, frozenset(range(1, 160, 2))), 41, LengthUnit.CODEPOINTS)
def test_cut_never_splits_a_grapheme(doc: Doc, room: int, unit: LengthUnit) -> None:
    piece = cut(doc.text, room, unit)
    assert piece.consumed not in doc.inside, doc.text[piece.consumed - 3 : piece.consumed + 3]
    # UTF-16: the head is whole code points, so it encodes without lone surrogates.
    piece.head.encode("utf-16-le")


@profile_settings(quick=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(150), st.integers(40, 600), st.sampled_from(UNITS))
def test_cut_closes_and_reopens_an_open_fence(doc: Doc, room: int, unit: LengthUnit) -> None:
    piece = cut(doc.text, room, unit)
    opener = open_fence(doc.text[: piece.consumed])
    if not piece.rest:
        return
    if opener is None:
        assert (piece.closing, piece.reopening) == ("", "")
        return
    assert open_fence(piece.head) is None, "the head must not end inside a code block"
    assert piece.closing.strip() == fence_run(opener)
    assert piece.reopening == opener + "\n"
    assert open_fence(piece.rest[: len(piece.reopening)]) == opener


@profile_settings(quick=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(150), st.integers(40, 600), st.sampled_from(UNITS))
def test_cut_prefers_paragraph_then_line_then_space(doc: Doc, room: int, unit: LengthUnit) -> None:
    text = doc.text
    if "```" in text or "~~~" in text:
        text = text.replace("```", "'''").replace("~~~", "---")  # no fences: one window
    fits = fit_prefix(text, room, unit)
    if fits >= len(text):
        return
    piece = cut(text, room, unit)
    window, floor = text[:fits], fits // 3  # boundaries in the first third are too early
    for separator in ("\n\n", "\n", " "):
        if window.rfind(separator) > floor:
            assert piece.consumed == window.rfind(separator) + len(separator), separator
            return
    assert piece.consumed <= fits
    assert fits - piece.consumed <= 20, "a hard cut goes back at most one grapheme"


@pytest.mark.parametrize("unit", UNITS)
def test_cut_examples(unit: LengthUnit) -> None:
    text = "First paragraph here.\n\nSecond line one\nsecond line two and more words"
    assert cut(text, 52, unit).head == "First paragraph here.\n\n"  # not the later line break
    text = "Intro.\n\nSecond line one\nsecond line two and more words"
    assert cut(text, 40, unit).head == "Intro.\n\nSecond line one\n"  # a paragraph too early
    assert cut("word " * 20, 23, unit).head == "word word word word "


def test_cut_counts_utf16_units_not_code_points() -> None:
    text = "😀" * 30  # 30 code points, 60 UTF-16 units
    assert cut(text, 40, LengthUnit.CODEPOINTS).head == text
    head = cut(text, 40, LengthUnit.UTF16).head
    assert head == "😀" * 20
    assert measure(head, LengthUnit.UTF16) == 40


def test_cut_in_a_code_block_closes_it_and_reopens_it_with_its_language() -> None:
    text = "Intro\n\n```python\n" + "".join(f"x{i} = {i}\n" for i in range(30)) + "```\nend"
    piece = cut(text, 80, LengthUnit.UTF16)
    assert piece.head.startswith("Intro\n\n```python\n")
    assert piece.head.endswith("\n```")
    assert piece.closing == "```"  # the head already ends with a newline
    assert piece.rest.startswith("```python\nx")
    assert_lossless(text, piece)


def test_cut_closes_a_long_fence_with_its_own_length() -> None:
    body = "".join(f"line {i} " + "y" * 9 + "\n" for i in range(12))
    text = "`````\n" + body + "`````\n"
    for room in range(30, 120):
        piece = cut(text, room, LengthUnit.CODEPOINTS)
        assert len(piece.head) <= room
        assert piece.closing.strip() in ("", "`````")


def test_cut_with_no_room() -> None:
    assert cut("abc", 0, LengthUnit.UTF16) == Cut("", "abc", 0)
    assert cut("", 10, LengthUnit.UTF16) == Cut("", "", 0)


# -- MessageLayout -------------------------------------------------------------------------------


Cuts = list[tuple[int, int]]


def reassemble(document: Sequence[Segment], messages: Sequence[Content]) -> Cuts | None:
    """Where each message ends, as (segment, offset), if ``messages`` are exactly ``document``
    split up plus fence close/reopen markers; None if they are not.

    A search, because "a\\n```" may be the head "a\\n" closed by "```" or the head "a" closed
    by "\\n```": only the next message tells which.
    """
    segments = [segment for segment in document if segment.text]

    def walk(message: int, segment: int, pos: int, carry: str) -> Cuts | None:
        if message == len(messages):
            return [] if segment == len(segments) and not carry else None
        content = list(messages[message])
        for index, placed in enumerate(content):
            if segment >= len(segments) or placed.kind is not segments[segment].kind:
                return None
            text, lead = placed.text, carry if index == 0 else ""
            if not text.startswith(lead):
                return None
            text = text[len(lead) :]
            remaining = segments[segment].text[pos:]
            if index < len(content) - 1:
                if text != remaining:
                    return None
                segment, pos = segment + 1, 0
                continue
            options = [(len(remaining), segment + 1, 0, "")] if text == remaining else []
            options += [
                (len(head), segment, pos + len(head), reopening)
                for head, reopening in _splits(lead, text, remaining)
            ]
            for size, next_segment, next_pos, reopening in options:
                rest = walk(message + 1, next_segment, next_pos, reopening)
                if rest is not None:
                    return [(segment, pos + size), *rest]
        return None

    return walk(0, 0, 0, "")


def reassembles(document: Sequence[Segment], messages: Sequence[Content]) -> bool:
    """Whether the messages are the document, losslessly."""
    return reassemble(document, messages) is not None


def _splits(carry: str, text: str, remaining: str) -> list[tuple[str, str]]:
    """Ways ``text`` can be a head of ``remaining`` plus a fence closing; with the reopening."""
    options: list[tuple[str, str]] = []
    candidates = {len(text)}
    closer = re.search(r"\n?(`{3,}|~{3,})$", text)
    if closer:
        candidates.update({closer.start(), closer.start(1)})
    for size in candidates:
        head, closing = text[:size], text[size:]
        if size >= len(remaining) or not remaining.startswith(head):
            continue
        opener = open_fence(carry + head)
        if not closing:
            options.append((head, ""))
        elif opener is not None:
            expected = ("" if head.endswith("\n") else "\n") + fence_run(opener)
            if closing == expected:
                options.append((head, opener + "\n"))
    return options


def assert_valid(messages: Sequence[Content], limit: int, unit: LengthUnit) -> None:
    """Every message is sendable: within the limit when joined, and not blank."""
    for content in messages:
        assert measure(plain(content), unit) <= limit
        assert plain(content).strip()


@profile_settings(quick=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(600), st.integers(60, 700), st.sampled_from(UNITS))
def test_layout_of_one_answer(doc: Doc, limit: int, unit: LengthUnit) -> None:
    layout = MessageLayout(limit, unit)
    document = [Segment(ANSWER, doc.text)]
    messages = layout.messages(document)
    assert_valid(messages, limit, unit)
    cuts = reassemble(document, messages)
    assert cuts is not None
    assert not {offset for _, offset in cuts} & doc.inside, "a message ends inside a grapheme"
    assert messages[: len(layout.frozen)] == layout.frozen
    assert len(messages) - len(layout.frozen) <= 1, "only the last message is still open"
    for content in messages[:-1]:
        assert open_fence(plain(content)) is None, "a code block left open at a rollover"


@profile_settings(quick=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(400), st.data(), st.integers(60, 500), st.sampled_from(UNITS))
def test_layout_is_stable_as_the_answer_grows(
    doc: Doc, data: st.DataObject, limit: int, unit: LengthUnit
) -> None:
    layout = MessageLayout(limit, unit)
    steps = data.draw(st.lists(st.integers(1, 80), min_size=1, max_size=200))
    frozen: list[Content] = []
    end = 0
    for step in [*steps, len(doc.text)]:
        end = min(len(doc.text), end + step)
        messages = layout.messages([Segment(ANSWER, doc.text[:end].rstrip())])
        assert layout.frozen[: len(frozen)] == frozen, "a frozen message changed"
        assert messages[: len(layout.frozen)] == layout.frozen
        assert_valid(messages, limit, unit)
        frozen = list(layout.frozen)
    document = [Segment(ANSWER, doc.text)]
    assert reassembles(document, layout.messages(document))


@profile_settings(quick=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents(150),
    documents(150),
    st.lists(st.text(min_size=1, max_size=60).filter(str.strip), max_size=3),
    st.integers(60, 400),
    st.sampled_from(UNITS),
    st.integers(3, 200),
)
def test_layout_of_reasoning_answer_and_notices(
    thought: Doc,
    reply: Doc,
    notes: list[str],
    limit: int,
    unit: LengthUnit,
    step: int,
) -> None:
    """Reasoning streams, then the answer, then notices: the order a reply grows in."""
    layout = MessageLayout(limit, unit)
    stages: list[list[Segment]] = []
    for end in range(step, len(thought.text) + step, step):
        stages.append([Segment(REASONING, thought.text[:end].rstrip())])
    for end in range(step, len(reply.text) + step, step):
        answer = reply.text[:end].rstrip()
        stages.append([Segment(REASONING, thought.text), Segment(ANSWER, answer)])
    final = [Segment(REASONING, thought.text), Segment(ANSWER, reply.text)]
    stages.append(final := [*final, *(Segment(NOTICE, note) for note in notes)])
    frozen: list[Content] = []
    for document in stages:
        messages = layout.messages(document)
        assert layout.frozen[: len(frozen)] == frozen, "a frozen message changed"
        assert_valid(messages, limit, unit)
        frozen = list(layout.frozen)
    assert reassembles(final, layout.messages(final))


@pytest.mark.parametrize("unit", UNITS)
def test_layout_rolls_over_a_long_answer_at_paragraphs(unit: LengthUnit) -> None:
    paragraphs = [f"Paragraph {i}: " + "lorem ipsum " * 20 for i in range(20)]
    text = "\n\n".join(paragraphs)
    layout = MessageLayout(1000, unit)
    messages = layout.messages([Segment(ANSWER, text)])
    assert len(messages) >= 5
    assert_valid(messages, 1000, unit)
    for content in messages[:-1]:
        assert content[-1].text.endswith("\n\n")  # whole paragraphs only
    assert "".join(c[0].text for c in messages) == text


def test_layout_counts_the_blank_line_between_segments() -> None:
    layout = MessageLayout(20, LengthUnit.CODEPOINTS)
    document = [Segment(ANSWER, "a" * 10), Segment(NOTICE, "b" * 8)]  # 10 + 2 + 8 = 20
    assert layout.messages(document) == [tuple(document)]
    document = [Segment(ANSWER, "a" * 10), Segment(NOTICE, "b" * 9)]  # 21: the notice moves
    assert layout.messages(document) == [(document[0],), (document[1],)]


def test_layout_of_an_empty_document() -> None:
    layout = MessageLayout(100, LengthUnit.UTF16)
    assert layout.messages([]) == []
    assert layout.messages([Segment(ANSWER, "")]) == []


@pytest.mark.timeout(5)
@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize(
    "text",
    [
        "Z" + "\u0301" * 300 + " tail",  # "Zalgo": one grapheme longer than a message
        "👩" + "\u200d👩" * 40,  # an absurd ZWJ chain
        "🇺🇦" * 200,
    ],
)
def test_layout_of_a_grapheme_longer_than_a_message_terminates(text: str, unit: LengthUnit) -> None:
    layout = MessageLayout(40, unit)
    messages = layout.messages([Segment(ANSWER, text)])
    assert_valid(messages, 40, unit)
    assert "".join(c[0].text for c in messages) == text
