"""Markdown → Slack mrkdwn: formatting converts, nothing the model wrote is lost, nothing pings."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bots.slack.render import (
    escape,
    markdown_to_mrkdwn,
    render,
    render_stream_markdown,
    unescape,
)
from core.sink import Segment, SegmentKind

MARKUP = "*_~`#>[]()!|-\n &<"
TASK_BOX = re.compile(r"^(\s*)- \[[ xX]\] ", re.MULTILINE)
markdownish = st.text(alphabet=st.sampled_from("ab1Z é✓" + MARKUP + "\t."), max_size=300)


def letters(text: str) -> Counter[str]:
    return Counter(c for c in text if c.isalnum())


@given(markdownish)
@example("- [x] done\n- [ ] todo")
@example("![alt text](http://img) and [link](http://a?b=1&c=2)")
@example("***a*** __b__ ~~c~~ `d` # e")
@example("| a | b |\n|---|---|\n| 1 | 2 |")
def test_no_letter_or_digit_is_ever_lost(text: str) -> None:
    shown = unescape(markdown_to_mrkdwn(text))
    assert letters(shown) == letters(TASK_BOX.sub(r"\1- ", text))


@given(st.text(alphabet=st.sampled_from("ab1 *_~`#>&<\n-."), max_size=200))
@example("<!channel> <@U123> & a > b")
def test_the_model_cannot_write_slack_control_sequences(text: str) -> None:
    shown = markdown_to_mrkdwn(text)
    assert "<" not in shown  # no <!channel>, <@user> or <url> unless it wrote a Markdown link
    assert re.fullmatch(r"([^&]|&(amp|lt|gt);)*", shown, re.DOTALL)
    assert all(">" not in line[1:] for line in shown.split("\n"))  # only a quote marker


@given(st.text(alphabet=st.sampled_from("abcXYZ019 ,.?:;'\"()é✓😀"), max_size=200))
def test_plain_prose_is_shown_as_written(text: str) -> None:
    assert markdown_to_mrkdwn(text) == text.strip()


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and *italic*", "*bold* and _italic_"),
        ("# Title", "*Title*"),
        ("- one\n- two", "• one\n• two"),
        ("[docs](https://x.io/a?b=1&c=2)", "<https://x.io/a?b=1&amp;c=2|docs>"),
        ("~~gone~~", "~gone~"),
        ("2 * 3 * 4 = 24", "2 * 3 * 4 = 24"),
        ("> a quote with <tags>", "> a quote with &lt;tags&gt;"),
        (
            "```python\nif a < b and c > d:\n    **x**\n```",
            "```python\nif a &lt; b and c &gt; d:\n    **x**\n```",
        ),
        ("- [x] done", "• ☑ done"),
    ],
)
def test_markdown_becomes_mrkdwn(markdown: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(markdown) == mrkdwn


def test_a_message_renders_each_kind_of_segment() -> None:
    content = (
        Segment(SegmentKind.REASONING, "first <think>\nthen"),
        Segment(SegmentKind.ANSWER, "**Yes**"),
        Segment(SegmentKind.REASONING_COLLAPSED, "why"),
        Segment(SegmentKind.NOTICE, "⏹ Stopped & saved."),
    )
    rendered = render(content)
    assert rendered.text == (
        "> 💭 first &lt;think&gt;\n> then\n\n*Yes*\n\n> 💭 why\n\n⏹ Stopped &amp; saved."
    )
    assert rendered.plain == escape("first <think>\nthen\n\n**Yes**\n\nwhy\n\n⏹ Stopped & saved.")
    assert render((Segment(SegmentKind.STATUS, "💭 Thinking… 3 s"),)).text == "💭 Thinking… 3 s"


def test_native_streams_leave_out_the_changing_status_line() -> None:
    thinking = (Segment(SegmentKind.STATUS, "💭 Thinking… 3 s"),)
    assert render_stream_markdown(thinking) == ""
    answer = (Segment(SegmentKind.ANSWER, "**x**"), Segment(SegmentKind.NOTICE, "note"))
    assert render_stream_markdown(answer) == "**x**\n\n_note_"
