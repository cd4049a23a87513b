"""Untrusted text never pings in Slack: no `<!here>`, `<@U…>`, `<#C…>` or non-web link, however
the model or the user writes it, in mrkdwn messages, their plain fallback and native streams."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, cast

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.native import NativeStreamSink
from bots.slack.pacing import SlackPacer
from bots.slack.render import (
    markdown_to_mrkdwn,
    quote,
    render,
    render_segment,
    render_stream_markdown,
    unescape,
)
from bots.slack.replies import slack_limits
from bots.slack.sink import ReplyTarget
from core.sink import Segment, SegmentKind
from tests.fuzz.checks import slack_control_sequences, stream_markdown_links

ZWSP = "\u200b"
INJECTIONS = [
    "[x](!here)",
    "[x](!channel)",
    "[x](!everyone)",
    "[x](!subteam^S0123|@team)",
    "[x](@U0123ABC)",
    "[x](#C0123)",
    "[x](<@U0123>)",
    "![](!here)",
    "![x](@U0123ABC)",
    "[x]( !here)",
    "[x][r]\n\n[r]: !here",
    "<!here>",
    "<@U0123>",
    "<#C0123|general>",
    "<https://evil|label>",
    "<!subteam^S0123|@team> and <!date^1^{date}|x>",
    "| a | b |\n|---|---|\n| [x](!here) | ![](@U0123) |",
    "`[x](!here)` and ```\n<!channel>\n```",
    "> [x](@U0123ABC)",
]
KINDS = list(SegmentKind)


def letters(text: str) -> Counter[str]:
    return Counter(c for c in text if c.isalnum())


def shown(text: str) -> str:
    """What a reader sees of rendered text: entities decoded, link breaks invisible."""
    return unescape(text).replace(ZWSP, "")


@pytest.mark.parametrize("text", INJECTIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_no_segment_kind_makes_a_slack_control_sequence(text: str, kind: SegmentKind) -> None:
    content = (Segment(kind, text),)
    rendered = render(content)
    for out in (rendered.text, rendered.plain, render_segment(content[0]), quote(text)):
        assert slack_control_sequences(out) == []
        assert not re.search(r"<[!@#]", out)
    assert letters(shown(rendered.plain)) == letters(text)
    assert letters(shown(rendered.text)) == letters(text)


@pytest.mark.parametrize("text", INJECTIONS)
def test_the_whole_message_with_every_kind_of_segment_is_safe(text: str) -> None:
    content = tuple(Segment(kind, text) for kind in KINDS)
    rendered = render(content)
    assert slack_control_sequences(rendered.text) == []
    assert slack_control_sequences(rendered.plain) == []
    markdown = render_stream_markdown(content)
    assert stream_markdown_links(markdown) == []


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("[x](!here)", "x (!here)"),
        ("[x](!channel)", "x (!channel)"),
        ("[x](!everyone)", "x (!everyone)"),
        ("[x](!subteam^S0123|@team)", "x (!subteam^S0123|@team)"),
        ("[x](@U0123ABC)", "x (@U0123ABC)"),
        ("[x](<@U0123>)", "x (&lt;@U0123&gt;)"),
        ("[x](#C0123)", "x (#C0123)"),
        ("[x](tg://user?id=1)", "x (tg://user?id=1)"),
        ("![](!here)", "!here"),
        ("![x](@U0123ABC)", "x (@U0123ABC)"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U0123>", "&lt;@U0123&gt;"),
        ("<#C0123|general>", "&lt;#C0123|general&gt;"),
        ("<https://evil|label>", "&lt;https://evil|label&gt;"),
        ("| a | b |\n|---|---|\n| [x](!here) | c |", "*a* | *b*\nx (!here) | c"),
    ],
)
def test_a_link_to_anything_but_the_web_or_mail_is_text(markdown: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(markdown) == mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("[x](https://example.com)", "<https://example.com|x>"),
        ("[x](http://example.com/a?b=1&c=2)", "<http://example.com/a?b=1&amp;c=2|x>"),
        ("[mail me](mailto:a@example.com)", "<mailto:a@example.com|mail me>"),
        ("[x](HTTPS://EXAMPLE.COM)", "<HTTPS://EXAMPLE.COM|x>"),
        ("![](https://example.com/a.png)", "<https://example.com/a.png>"),
    ],
)
def test_web_and_mail_links_stay_links(markdown: str, mrkdwn: str) -> None:
    assert markdown_to_mrkdwn(markdown) == mrkdwn


def test_a_link_hidden_in_a_web_link_falls_back_to_escaped_text() -> None:
    """An image whose URL holds a link would nest one Slack link in another."""
    assert markdown_to_mrkdwn("![](http://x[a](http://y))") == "![](http://x[a](http://y))"


@pytest.mark.parametrize(
    ("markdown", "stream"),
    [
        ("[x](!here)", "[x]\u200b(!here)"),
        ("[x](!channel)", "[x]\u200b(!channel)"),
        ("[x](!everyone)", "[x]\u200b(!everyone)"),
        ("[x](!subteam^S0123|@team)", "[x]\u200b(!subteam^S0123|@team)"),
        ("[x](@U0123ABC)", "[x]\u200b(@U0123ABC)"),
        ("[x](<@U0123>)", "[x]\u200b(&lt;@U0123&gt;)"),
        ("![](#C0123)", "![]\u200b(#C0123)"),
        ("[x]( \n!here)", "[x]\u200b( \n!here)"),
        ("[x][r]\n\n[r]: !here", "[x][r]\n\n[r]\u200b: !here"),
        ("> - [r]:\n  @U0123", "> - [r]\u200b:\n  @U0123"),
        ("<!here>", "&lt;!here&gt;"),
        ("<@U0123>", "&lt;@U0123&gt;"),
        ("<#C0123|general>", "&lt;#C0123|general&gt;"),
        ("<https://evil|label>", "&lt;https://evil|label&gt;"),
        ("a & b > c", "a &amp; b &gt; c"),
    ],
)
def test_native_streams_escape_and_break_non_web_links(markdown: str, stream: str) -> None:
    out = render_stream_markdown((Segment(SegmentKind.ANSWER, markdown),))
    assert out == stream
    assert stream_markdown_links(out) == []
    assert shown(out) == markdown


@pytest.mark.parametrize(
    "markdown",
    [
        "**bold**, _italic_, ~~gone~~ and `code`",
        "- one\n- two\n\n1. first",
        "[docs](https://example.com/a_b?c=1) and [mail](mailto:a@example.com)",
        "> a quote\n>> nested\n> - in a list",
        "```python\nprint('hi')\n```",
        "if a[0]:\n    go()",  # a subscript then a colon is no reference definition
    ],
)
def test_native_streams_keep_ordinary_markdown(markdown: str) -> None:
    assert render_stream_markdown((Segment(SegmentKind.ANSWER, markdown),)) == markdown


def test_native_streams_escape_notices_and_reasoning() -> None:
    content = (
        Segment(SegmentKind.REASONING, "> [x](!here) <@U0123>"),
        Segment(SegmentKind.ANSWER, "ok"),
        Segment(SegmentKind.NOTICE, "<!channel> [x](@U0123ABC)"),
    )
    assert render_stream_markdown(content).split("\n\n") == [
        "> 💭 &gt; [x]\u200b(!here) &lt;@U0123&gt;",
        "ok",
        "_&lt;!channel&gt; [x]\u200b(@U0123ABC)_",
    ]


@pytest.mark.parametrize("text", ["[x](https://example.com) & [y](!here) <b>", *INJECTIONS])
def test_a_longer_text_renders_to_a_longer_stream(text: str) -> None:
    """The native sink appends the difference: what a prefix renders stays a prefix."""
    full = render_stream_markdown((Segment(SegmentKind.ANSWER, text),))
    for cut in range(1, len(text)):
        head = text[:cut]
        part = render_stream_markdown((Segment(SegmentKind.ANSWER, head),))
        unfinished = re.search(r"\][(:]\s*[a-z:/]{0,7}$", head, re.IGNORECASE)
        assert full.startswith(part) or unfinished, (head, part, full)


class _StreamingClient:
    """The three stream methods of the Web API, recording what each call sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def chat_startStream(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(("start", kwargs.get("markdown_text") or ""))
        return {"ts": "1.0"}

    async def chat_appendStream(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(("append", kwargs["markdown_text"]))
        return {}

    async def chat_stopStream(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(("stop", kwargs.get("markdown_text") or ""))
        return {}


class _FreePacer:
    async def acquire(self) -> None:
        return None

    def penalize(self, retry_after: float) -> None:
        return None


async def test_an_injection_streams_natively_without_a_ping_or_a_fallback() -> None:
    text = "Ask [the team](!subteam^S0123|@team) or <!here>, see [docs](https://example.com) & go"
    client = _StreamingClient()  # no chat_update: a fallback would fail the test
    sink = NativeStreamSink(
        cast(AsyncWebClient, client),
        ReplyTarget("T1", "C1", "1.0", "U1"),
        pacer=SlackPacer(channel=_FreePacer(), workspace=_FreePacer()),
        limits=slack_limits(3900),
        update_budget=_FreePacer(),
    )
    words = text.split(" ")
    ref = await sink.send((Segment(SegmentKind.ANSWER, words[0]),))
    for n in range(2, len(words) + 1):
        await sink.edit(ref, (Segment(SegmentKind.ANSWER, " ".join(words[:n])),))
    await sink.edit(ref, (Segment(SegmentKind.ANSWER, text),), final=True)
    streamed = "".join(sent for _, sent in client.calls)
    assert streamed == render_stream_markdown((Segment(SegmentKind.ANSWER, text),))
    assert stream_markdown_links(streamed) == []
    assert [method for method, _ in client.calls][-1] == "stop"
    assert shown(streamed) == text
