"""Untrusted text never mentions anyone in Telegram: no text_mention, custom_emoji or link to
anything but http(s)/mailto (tg://user?id=…, javascript:, …); the visible text stays."""

from __future__ import annotations

import pytest

from bots.telegram.render import Entity, harmless, markdown, render, render_segment, sanitize
from bots.telegram.sink import payloads
from core.sink import Segment, SegmentKind
from tests.fuzz.checks import telegram_unsafe_entities

INJECTIONS = [
    ("[x](tg://user?id=123)", "x"),
    ("[x](javascript:alert(1))", "x"),
    ("[x](tg://resolve?domain=somebot)", "x"),
    ("[x](<tg://user?id=123>)", "x"),
    ("[x]( tg://user?id=123 )", "x"),
    ("[x](//evil.example)", "x"),
    ("[x](ftp://example.com)", "x"),
    ("[x][r]\n\n[r]: tg://user?id=123", "x"),
    ("![x](tg://emoji?id=1234567890123456789)", "x"),
    ("![x](javascript:alert(1))", "🖼x"),
    ("<tg://user?id=123>", "<tg://user?id=123>"),
    ("**[x](tg://user?id=123)**", "x"),
    ("> [x](tg://user?id=123)", "x"),
]


@pytest.mark.parametrize(("source", "text"), INJECTIONS)
def test_model_text_makes_no_mention_or_unsafe_link(source: str, text: str) -> None:
    for rendered in (markdown(source), render((Segment(SegmentKind.ANSWER, source),))):
        assert rendered.text == text  # the visible letters stay
        assert telegram_unsafe_entities(rendered.entities) == []
        assert not any(e.type in ("text_link", "text_mention") for e in rendered.entities)
    for _, entities in payloads((Segment(SegmentKind.ANSWER, source),)):
        assert all(e.type not in ("text_link", "text_mention", "custom_emoji") for e in entities)


def test_formatting_around_a_dropped_link_stays() -> None:
    rendered = markdown("**[x](tg://user?id=123)** and > _y_")
    assert [e.type for e in rendered.entities] == ["bold", "italic"]


@pytest.mark.parametrize(
    "url",
    ["https://example.com", "http://example.com/a?b=1&c=2", "HTTPS://EXAMPLE.COM", "mailto:a@b.c"],
)
def test_web_and_mail_links_stay_links(url: str) -> None:
    rendered = render((Segment(SegmentKind.ANSWER, f"see [x]({url})"),))
    assert rendered.text == "see x"
    assert rendered.entities == (Entity("text_link", 4, 1, url=url),)


def test_a_url_keeps_its_angle_bracket() -> None:
    """`<` is swapped for a stand-in while parsing; the link's URL gets it back too."""
    (entity,) = markdown("[x](https://example.com/?a<b)").entities
    assert entity.url == "https://example.com/?a<b"


@pytest.mark.parametrize("kind", list(SegmentKind))
def test_other_segments_show_injections_as_text(kind: SegmentKind) -> None:
    source = "[x](tg://user?id=123) <tg://user?id=123>"
    rendered = render_segment(Segment(kind, source))
    assert telegram_unsafe_entities(rendered.entities) == []
    if kind is not SegmentKind.ANSWER:
        assert rendered.text == source


def test_sanitize_drops_what_untrusted_text_must_not_make() -> None:
    entities = [
        Entity("text_mention", 0, 1),
        Entity("custom_emoji", 1, 1),
        Entity("text_link", 2, 1, url="tg://user?id=1"),
        Entity("text_link", 3, 1, url="javascript:alert(1)"),
        Entity("text_link", 4, 1),
        Entity("mention", 5, 1),
        Entity("url", 6, 1),
        Entity("text_link", 7, 1, url="https://example.com"),
        Entity("bold", 8, 1),
    ]
    assert sanitize(entities) == (
        Entity("text_link", 7, 1, url="https://example.com"),
        Entity("bold", 8, 1),
    )
    assert [harmless(e) for e in entities] == [False] * 7 + [True, True]
