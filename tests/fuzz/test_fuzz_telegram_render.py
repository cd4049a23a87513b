"""Telegram rendering of any reply state: valid entities, UTF-16 offsets, within 4,096 units.

The reply is laid out by the product's MessageLayout under Telegram's declared limit (4,000
UTF-16 units) and cut off at any point of its stream, so half-written Markdown is rendered too.
Each message goes through ``payloads``: exactly what the sink sends (the formatted text with its
entities, then the plain-text fallback). Every option must pass the fake Bot API's checks
(Telegram's documented entity rules) and fit Telegram's 4,096 UTF-16 units.
"""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, assume, event, example, given, target

from bots.telegram.render import (
    GrowingMarkdown,
    markdown,
    render,
    render_segment,
    sanitize,
)
from bots.telegram.sink import MAX_MESSAGE_UTF16, payloads, telegram_limits
from core.markdown_breaks import settled_break
from core.sink import Content, LengthUnit, Segment, SegmentKind, measure, plain
from core.stream.layout import MessageLayout
from tests.fakes.fake_telegram import check_entities
from tests.fuzz.checks import WEB_SCHEME, telegram_unsafe_entities
from tests.fuzz.profiles import profile_settings
from tests.fuzz.strategies import bomb, chunked, cut_points, injection_text, model_text
from tests.fuzz.watchdog import time_limit

LIMITS = telegram_limits(1.0)
RENDER_SECONDS = 5.0  # every edit renders the message again: far below this in practice

texts = model_text(max_pieces=80, max_repeat=50) | bomb(8_000)
kinds = st.sampled_from(
    [SegmentKind.REASONING, SegmentKind.REASONING_COLLAPSED, SegmentKind.NOTICE]
)


def assert_telegram_accepts(content: Content) -> None:
    """Every payload the sink may send is one Telegram takes, as the fake Bot API checks it."""
    options = payloads(content)
    assert options, "nothing to send"
    for text, entities in options:
        assert text.strip(), "a blank message"
        assert measure(text, LengthUnit.UTF16) <= MAX_MESSAGE_UTF16
        check_entities(text, [entity.to_dict() for entity in entities])
    for segment in content:  # no segment vanishes from the formatted text
        assert render_segment(segment).text.strip() or not segment.text.strip(), segment
    rendered = render(content)
    for entity in rendered.entities:
        assert 0 <= entity.offset < entity.end <= rendered.length
    formatted = rendered.text.strip() and rendered.length <= MAX_MESSAGE_UTF16
    event("formatted" if formatted else "plain-text fallback")
    if formatted:
        assert options[0][0] == rendered.text, "a renderable message lost its formatting"


@profile_settings(quick=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, cut_points, st.lists(st.tuples(kinds, model_text(20)), max_size=2))
@example("[a](" * 1_000, [], [])
@example("`" * 4_000, [], [])
@example("\n\n".join(["***"] * 800), [], [])
@example("*" * 5_000 + "😀" * 10, [17, 4_999], [])
# Found by this target: markup that renders to nothing became a blank formatted payload, and
# beside a notice the answer vanished from the formatted message.
@example("```\n````\n`````", [], [])
@example("`" * 50, [], [(SegmentKind.NOTICE, "⏹ Stopped.")])
def test_every_reply_state_renders_to_what_telegram_accepts(
    answer: str, cuts: list[int], extra: list[tuple[SegmentKind, str]]
) -> None:
    layout = MessageLayout(LIMITS.max_length, LIMITS.unit)
    growth = 0.0  # how much rendering grew a message: hypothesis looks for the most
    streamed = ""
    for chunk in chunked(answer, cuts):
        streamed += chunk
        document = [Segment(SegmentKind.ANSWER, streamed.strip())]
        document += [Segment(kind, text.strip()) for kind, text in extra]
        for content in layout.messages(document):
            assert measure(plain(content), LengthUnit.UTF16) <= LIMITS.max_length
            with time_limit(RENDER_SECONDS, "rendering one Telegram message"):
                assert_telegram_accepts(content)
            size = max(1, measure(plain(content), LengthUnit.UTF16))
            growth = max(growth, render(content).length / size)
    target(growth)


def test_open_tasks_show_an_open_box() -> None:
    """Seen while fuzzing: the converter showed an open task as "☑", a ticked box."""
    content = (Segment(SegmentKind.ANSWER, "- [ ] todo\n- [x] done"),)
    assert render(content).text.splitlines() == ["☐ todo", "✅ done"]


TG_INJECTION = [
    "tg://user?id=123",
    "tg://emoji?id=1234567890123456789",
    "tg://resolve?domain=x",
    "javascript:alert(1)",
    "[x](",
    "![x](",
    "[r]: ",
]
tg_text = st.lists(st.sampled_from(TG_INJECTION) | injection_text, max_size=6).map("".join)
all_kinds = st.sampled_from(list(SegmentKind))


@profile_settings(quick=300, deadline=None)
@given(st.lists(st.tuples(all_kinds, tg_text), min_size=1, max_size=4))
@example([(SegmentKind.ANSWER, "[x](tg://user?id=123) ![y](tg://emoji?id=1234567890123456789)")])
@example([(SegmentKind.ANSWER, "[x][r]\n\n[r]: javascript:alert(1)")])
def test_untrusted_text_never_mentions_anyone_in_telegram(
    pairs: list[tuple[SegmentKind, str]],
) -> None:
    content = tuple(Segment(kind, text) for kind, text in pairs)
    assume(plain(content).strip())  # a blank reply is never sent
    rendered = render(content)
    assert telegram_unsafe_entities(rendered.entities) == [], rendered
    for segment in content:
        assert telegram_unsafe_entities(render_segment(segment).entities) == []
    for text, entities in payloads(content):
        check_entities(text, [entity.to_dict() for entity in entities])
        for entity in entities:
            assert entity.type not in ("text_mention", "custom_emoji", "mention", "url")
            assert entity.type != "text_link" or WEB_SCHEME.match(entity.url or "")


@profile_settings(quick=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_text(max_pieces=80, max_repeat=3), cut_points)
@example("Intro **a**\n\n- one\n- two\n\nMore `x`\n\n1. n\n\nEnd [l](https://e.org)", [3, 20, 40])
@example("a\n\n[r]: https://e.org\n\n[x][r]", [2, 5])  # a definition after the break
@example("```\nq\n\nz\n```\n\nafter", [4, 9])  # a blank line inside a fence
@example("a\n\n```\n\n````\na", [])  # a tail that opens with a blank code block
def test_a_growing_answer_renders_from_its_kept_part_exactly_as_whole(
    answer: str, cuts: list[int]
) -> None:
    growing = GrowingMarkdown()  # one per message, as the sink keeps it across edits
    streamed = ""
    for chunk in chunked(answer, cuts):
        streamed += chunk
        source = streamed if len(streamed) % 2 else streamed.strip()  # as sent, or stripped
        if not source.strip():
            continue
        whole, incremental = markdown(source), growing(source)
        event("from a kept part" if settled_break(source) > 0 else "rendered whole")
        assert incremental.text == whole.text
        assert sanitize(incremental.entities) == sanitize(whole.entities)
