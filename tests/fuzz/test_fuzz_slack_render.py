"""Slack rendering of any reply state: within Slack's 40,000 characters, quickly, never blank.

Replies are laid out by the product's MessageLayout under ``slack_limits(SLACK_MESSAGE_CHARS)``
and cut off at any point of their stream. Each message's mrkdwn and its plain-text fallback (what
the sink sends) must fit the text limit the fake Slack enforces, and rendering must stay fast:
it runs on the event loop for every edit of a message.

Text written to make Slack ping (`[x](!here)`, `<@U…>`, …) must never do so, in mrkdwn, in the
plain fallback or in a native stream's Markdown, and a stream's Markdown must only grow.
"""

from __future__ import annotations

import re
from collections import Counter

import hypothesis.strategies as st
from hypothesis import HealthCheck, event, example, given, target

from bots.slack.render import (
    GrowingMrkdwn,
    _escape_markdown,
    markdown_to_mrkdwn,
    quote,
    render,
    render_segment,
    render_stream_markdown,
    unescape,
)
from bots.slack.replies import slack_limits
from core.markdown_breaks import settled_break
from core.sink import Content, LengthUnit, Segment, SegmentKind, measure, plain
from core.stream.layout import MessageLayout
from tests.fakes.fake_slack import TEXT_LIMIT
from tests.fuzz.checks import slack_control_sequences, stream_markdown_links
from tests.fuzz.profiles import profile_settings
from tests.fuzz.strategies import bomb, chunked, cut_points, injection_text, model_text
from tests.fuzz.watchdog import time_limit

RENDER_SECONDS = 5.0  # a render takes milliseconds; the old link rule took 12 s on a bomb
# Rendering grows text at most 5× ("&" → "&amp;"), so 8,000 characters per message still fit
# Slack's 40,000: the most SLACK_MESSAGE_CHARS allows.
SAFE_MESSAGE_CHARS = TEXT_LIMIT // 5

texts = model_text(max_pieces=80, max_repeat=50) | bomb(9_000)
kinds = st.sampled_from(
    [SegmentKind.REASONING, SegmentKind.REASONING_COLLAPSED, SegmentKind.NOTICE]
)


def assert_slack_accepts(content: Content) -> float:
    """Both texts the sink may send fit Slack; returns how much rendering grew the message."""
    with time_limit(RENDER_SECONDS, "rendering one Slack message"):
        rendered = render(content)
    with time_limit(RENDER_SECONDS, "rendering one native-stream message"):
        assert "<" not in render_stream_markdown(content)
    assert len(rendered.text) <= TEXT_LIMIT, len(rendered.text)
    assert len(rendered.plain) <= TEXT_LIMIT, len(rendered.plain)
    assert rendered.text.strip() or rendered.plain.strip(), "nothing to show"
    return max(len(rendered.text), len(rendered.plain)) / max(1, len(plain(content)))


@profile_settings(quick=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts,
    cut_points,
    st.lists(st.tuples(kinds, model_text(20)), max_size=2),
    st.integers(200, SAFE_MESSAGE_CHARS) | st.just(3_900),
)
@example("[a](" * 2_000, [], [], 3_900)
@example("![a](" * 1_600, [], [], 3_900)
@example("&" * 9_000, [], [(SegmentKind.REASONING, "<&>\n" * 50)], SAFE_MESSAGE_CHARS)
def test_every_reply_state_renders_within_slacks_limit(
    answer: str, cuts: list[int], extra: list[tuple[SegmentKind, str]], message_chars: int
) -> None:
    limits = slack_limits(message_chars)
    layout = MessageLayout(limits.max_length, limits.unit)
    growth = 0.0
    streamed = ""
    for chunk in chunked(answer, cuts):
        streamed += chunk
        document = [Segment(SegmentKind.ANSWER, streamed.strip())]
        document += [Segment(kind, text.strip()) for kind, text in extra]
        for content in layout.messages(document):
            assert measure(plain(content), LengthUnit.CODEPOINTS) <= limits.max_length
            growth = max(growth, assert_slack_accepts(content))
    target(growth)


def test_the_largest_allowed_message_fits_slack() -> None:
    limits = slack_limits(8_000)
    (content,) = MessageLayout(limits.max_length, limits.unit).messages(
        [Segment(SegmentKind.ANSWER, "&" * 8_000)]
    )
    assert_slack_accepts(content)


TASK_BOX = re.compile(r"^(\s*)- \[[ xX]\] ", re.MULTILINE)
all_kinds = st.sampled_from(list(SegmentKind))
injection_content = st.lists(st.tuples(all_kinds, injection_text), min_size=1, max_size=4).map(
    lambda pairs: tuple(Segment(kind, text) for kind, text in pairs)
)


def letters(text: str) -> Counter[str]:
    return Counter(c for c in text if c.isalnum())


@profile_settings(quick=400, deadline=None)
@given(injection_content)
@example((Segment(SegmentKind.ANSWER, "[x](!here) ![](@U0123) [y](<#C0123>)"),))
@example((Segment(SegmentKind.ANSWER, "| a |\n|---|\n| [x](!subteam^S0123|@team) |"),))
@example((Segment(SegmentKind.ANSWER, "![](http://x[a](http://y))"),))
def test_untrusted_text_never_makes_a_slack_control_sequence(content: Content) -> None:
    rendered = render(content)
    assert slack_control_sequences(rendered.text) == [], rendered.text
    assert slack_control_sequences(rendered.plain) == [], rendered.plain
    for segment in content:
        out = render_segment(segment)
        assert slack_control_sequences(out) == [], out
        assert slack_control_sequences(quote(segment.text)) == []
        if segment.kind is SegmentKind.ANSWER:  # nothing the model wrote is lost
            assert letters(unescape(out)) == letters(TASK_BOX.sub(r"\1- ", segment.text.strip()))
    markdown = render_stream_markdown(content)
    assert stream_markdown_links(markdown) == [], markdown


@profile_settings(quick=400, deadline=None)
@given(injection_text, st.integers(min_value=0))
@example("[x](ht!here)", 6)
@example("[r]: !here\n[x][r]", 3)
def test_native_stream_markdown_only_grows_and_never_pings(text: str, cut: int) -> None:
    """What a shorter text renders is the start of what the longer one renders (the native sink
    appends the difference), except where the shorter one ends inside a link target that could
    still be a web address; it holds no `<`, no link but to the web or mail, and shows the text
    as written."""
    head = text[: cut % (len(text) + 1)]
    full = render_stream_markdown((Segment(SegmentKind.ANSWER, text),))
    part = render_stream_markdown((Segment(SegmentKind.ANSWER, head),))
    assert stream_markdown_links(full) == [], full
    assert stream_markdown_links(part) == [], part
    unfinished = re.search(r"\][(:]\s*[a-z:/]{0,7}$", head, re.IGNORECASE)
    assert full.startswith(part) or unfinished, (head, part, full)
    if text.strip():
        assert unescape(full.replace("\u200b", "")) == text.replace("\u200b", "")


def grown(answer: str, cuts: list[int]) -> list[tuple[str, str]]:
    """Each state of a streamed answer with its mrkdwn from one GrowingMrkdwn, as a sink keeps
    it across edits (sent as is or stripped, as the layout may do either)."""
    growing = GrowingMrkdwn()
    streamed, states = "", []
    for chunk in chunked(answer, cuts):
        streamed += chunk
        source = streamed if len(streamed) % 2 else streamed.strip()
        if source.strip():
            states.append((source, growing(source)))
    return states


@profile_settings(quick=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_text(max_pieces=80, max_repeat=3), cut_points)
@example("Intro **a**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nMore `x`\n\n# End", [3, 20, 40])
@example("  ```\nind\n```\n\nPara **b**.\n\n> quote", [])  # fences each reader sees its way
@example("a\n\n```\nq\n\nz\n```\n\nafter", [4, 9])  # a blank line inside a fence
def test_a_growing_answer_converts_from_its_kept_part_exactly_as_whole(
    answer: str, cuts: list[int]
) -> None:
    for source, mrkdwn in grown(answer, cuts):
        whole = markdown_to_mrkdwn(source)
        event("from a kept part" if settled_break(source) > 0 else "converted whole")
        if mrkdwn != whole:
            # Only where the safety net refused the whole text: each part passed it.
            event("the whole refused, the parts formatted")
            assert whole == _escape_markdown(source).strip()
            assert letters(unescape(mrkdwn)) == letters(TASK_BOX.sub(r"\1- ", source.strip()))


@profile_settings(quick=400, deadline=None)
@given(injection_text, cut_points)
@example("a\n\n[x](!here)\n\n<@U0123> b", [3, 8])
def test_a_growing_answer_never_makes_a_slack_control_sequence(text: str, cuts: list[int]) -> None:
    for _, mrkdwn in grown(text, cuts):
        assert slack_control_sequences(mrkdwn) == [], mrkdwn
