"""Rendering reply content to Telegram text + entities: always valid, nothing lost."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bots.telegram.render import CODE, QUOTES, Entity, Rendered, render, sanitize
from bots.telegram.sink import MAX_MESSAGE_UTF16, payloads
from core.sink import LengthUnit, Segment, SegmentKind, measure, plain
from tests.fakes.fake_telegram import check_entities
from tests.fuzz.profiles import profile_settings

# Any text a model might write: every plane, but no lone surrogates (not valid in JSON/UTF-8).
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=300)
# Markdown-heavy text: markup characters, emoji and newlines in a small alphabet, so
# hypothesis builds fences, emphasis, quotes, lists and tables often.
markdown_text = st.lists(
    st.sampled_from(
        [
            *"ab xyZ09\n\n*_~`#>-+|<[]()!\\$.:",
            "```",
            "```\n",
            "~~~\n",
            "😀",
            "👍🏽",
            "é",
            "中",
            "\t",
        ]
    ),
    max_size=120,
).map("".join)
segments = st.lists(
    st.builds(Segment, st.sampled_from(list(SegmentKind)), any_text | markdown_text), max_size=5
)


def as_dicts(entities: tuple[Entity, ...]) -> list[dict[str, object]]:
    return [
        {"type": e.type, "offset": e.offset, "length": e.length, "url": e.url or "x"}
        for e in entities
    ]


def alnum(text: str) -> str:
    return "".join(re.findall(r"[A-Za-z0-9]", text))


def assert_valid(rendered: Rendered) -> None:
    """What the fake Bot API (Telegram's documented rules) accepts, plus our stricter ones."""
    check_entities(rendered.text, as_dicts(rendered.entities))
    total = measure(rendered.text, LengthUnit.UTF16)
    for entity in rendered.entities:
        assert 0 <= entity.offset < entity.end <= total
    assert list(rendered.entities) == sorted(rendered.entities, key=lambda e: (e.offset, -e.length))
    for outer in rendered.entities:
        for inner in rendered.entities:
            if inner is outer or not (outer.offset <= inner.offset and inner.end <= outer.end):
                continue
            if (inner.offset, inner.end) == (outer.offset, outer.end):
                continue
            assert outer.type not in CODE, (outer, inner)
            assert not (outer.type in QUOTES and inner.type in QUOTES)


@profile_settings(quick=400, deadline=None)
@given(segments)
def test_entities_are_always_valid_utf16_spans(content: list[Segment]) -> None:
    assert_valid(render(content))


@profile_settings(quick=300, deadline=None)
@given(markdown_text)
def test_markdown_keeps_every_letter_and_digit(source: str) -> None:
    # List renumbering ("1.\n1." → "1. 2.") may change digits; keep list numbers out.
    source = re.sub(r"(?m)^(\s*)\d+[.)]", r"\1", source)
    # Text right after a fence is its info string (the pre entity's language): end the line.
    source = re.sub(r"(`{3,}|~{3,})", "\\1\n", source)
    rendered = render((Segment(SegmentKind.ANSWER, source),))
    assert_valid(rendered)
    assert alnum(rendered.text) == alnum(source)


@profile_settings(quick=200, deadline=None)
@given(
    st.sampled_from(
        [
            SegmentKind.STATUS,
            SegmentKind.NOTICE,
            SegmentKind.REASONING,
            SegmentKind.REASONING_COLLAPSED,
        ]
    ),
    any_text,
)
def test_plain_segments_are_shown_verbatim(kind: SegmentKind, text: str) -> None:
    rendered = render((Segment(kind, text),))
    assert rendered.text == text.strip()
    assert_valid(rendered)


@profile_settings(quick=200, deadline=None)
@given(segments)
def test_segments_are_joined_like_plain(content: list[Segment]) -> None:
    """Segments that render verbatim appear in order, separated like core.sink.plain()."""
    verbatim = [s for s in content if s.kind is not SegmentKind.ANSWER]
    rendered = render(verbatim)
    assert rendered.text == "\n\n".join(s.text.strip() for s in verbatim if s.text.strip())


def test_markdown_becomes_entities() -> None:
    rendered = render((Segment(SegmentKind.ANSWER, "Hello **world** and `x = 1` 😀 *end*"),))
    assert rendered.text == "Hello world and x = 1 😀 end"
    kinds = {
        (e.type, rendered.text.encode("utf-16-le")[e.offset * 2 : e.end * 2])
        for e in rendered.entities
    }
    assert ("bold", "world".encode("utf-16-le")) in kinds
    assert ("code", "x = 1".encode("utf-16-le")) in kinds
    assert ("italic", "end".encode("utf-16-le")) in kinds


def test_offsets_count_utf16_units_after_astral_characters() -> None:
    rendered = render((Segment(SegmentKind.ANSWER, "😀😀 **b**"),))
    (bold,) = rendered.entities
    assert (bold.type, bold.offset, bold.length) == ("bold", 5, 1)


def test_code_fence_becomes_pre_with_language() -> None:
    rendered = render((Segment(SegmentKind.ANSWER, "Run:\n\n```python\nif a < b:\n    pass\n```"),))
    assert "if a < b:\n    pass" in rendered.text
    (pre,) = [e for e in rendered.entities if e.type == "pre"]
    assert pre.language == "python"


def test_angle_brackets_are_text_not_html() -> None:
    source = "If x<y and y>z, then <div> tags and <b>this</b> stay."
    rendered = render((Segment(SegmentKind.ANSWER, source),))
    assert rendered.text == source


def test_half_written_markup_stays_literal() -> None:
    for partial in ("**bold", "`code", "[link](http://", "~~strike", "```py\nx = 1"):
        rendered = render((Segment(SegmentKind.ANSWER, f"Text {partial}"),))
        assert_valid(rendered)
        assert alnum(rendered.text) == alnum(f"Text {partial}")


def test_collapsed_reasoning_is_an_expandable_blockquote_under_the_answer() -> None:
    rendered = render(
        (
            Segment(SegmentKind.ANSWER, "The answer is 4."),
            Segment(SegmentKind.REASONING_COLLAPSED, "2 + 2: add them.\nSo 4."),
        )
    )
    assert rendered.text == "The answer is 4.\n\n2 + 2: add them.\nSo 4."
    quote = rendered.entities[-1]
    assert quote.type == "expandable_blockquote"
    assert (quote.offset, quote.length) == (18, len("2 + 2: add them.\nSo 4."))


def test_notices_are_italic_and_status_is_plain() -> None:
    rendered = render(
        (Segment(SegmentKind.STATUS, "💭 Thinking… 3 s"), Segment(SegmentKind.NOTICE, "⏹ Stopped."))
    )
    assert rendered.text == "💭 Thinking… 3 s\n\n⏹ Stopped."
    assert [e.type for e in rendered.entities] == ["italic"]


def test_sanitize_drops_what_telegram_would_refuse() -> None:
    kept = sanitize(
        [
            Entity("blockquote", 0, 10),
            Entity("blockquote", 2, 3),  # quote in quote
            Entity("pre", 0, 10),  # same span as the quote: inside it, allowed
            Entity("bold", 4, 2),  # inside pre
            Entity("italic", 8, 5),  # partial overlap
            Entity("text_link", 12, 4, url="http://x"),
            Entity("code", 13, 1),  # code inside a link
            Entity("bold", 12, 4),  # formatting around a link: fine
        ]
    )
    assert [(e.type, e.offset, e.length) for e in kept] == [
        ("blockquote", 0, 10),
        ("pre", 0, 10),
        ("text_link", 12, 4),
        ("bold", 12, 4),
    ]


@pytest.mark.parametrize("heading", ["# Title", "###### deep"])
def test_headings_render(heading: str) -> None:
    rendered = render((Segment(SegmentKind.ANSWER, heading),))
    assert alnum(rendered.text) == alnum(heading)
    assert rendered.entities


def test_payloads_fall_back_to_plain_when_the_rendering_is_too_long() -> None:
    # 600 horizontal rules: 3 chars each in Markdown, 8 once rendered.
    source = "\n\n".join(["***"] * 600)
    content = (Segment(SegmentKind.ANSWER, source),)
    assert render(content).length > MAX_MESSAGE_UTF16
    ((text, entities),) = payloads(content)
    assert text == plain(content).strip()
    assert entities == ()


def test_payloads_offer_formatted_then_plain() -> None:
    content = (Segment(SegmentKind.ANSWER, "**hi**"),)
    formatted, fallback = payloads(content)
    assert formatted[0] == "hi"
    assert formatted[1]
    assert fallback == ("**hi**", ())
