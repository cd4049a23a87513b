"""What the fuzz targets feed the product: model-like text, Markdown bombs, chunkings, limits."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

import hypothesis.strategies as st
import looptime

from bots.slack.replies import slack_limits
from bots.telegram.sink import telegram_limits
from core.sink import LengthUnit, SinkLimits

# Pieces a model writes, chosen so hypothesis builds the hard cases often: fences of every kind
# (and left open), emphasis runs, quotes, lists, tables, links; graphemes of several code points
# (a cut inside one shows broken characters), astral characters (two UTF-16 units), right-to-left
# text, combining marks, zero-width joiners, near-miss think tags, and whitespace of all sorts.
PIECES = [
    *"abcXYZ0189 ",
    "word",
    "lorem ipsum",
    "naïve",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n",
    "\n\n\n",
    "\u00a0",  # no-break space
    "\u2028",  # line separator
    "\u200b",  # zero-width space
    "\u200f",  # right-to-left mark
    "*",
    "**",
    "***",
    "_",
    "__",
    "~~",
    "`",
    "``",
    "\\",
    "#",
    "# ",
    "### ",
    "> ",
    ">",
    "- ",
    "1. ",
    "  - ",
    "- [ ] ",
    "- [x] ",
    "|",
    "| a | b |\n|---|---|\n",
    "---",
    "[",
    "]",
    "(",
    ")",
    "[link](http://example.com/a_b?c=1&d=2)",
    "![img](http://x/y.png)",
    "<",
    ">",
    "&",
    "<b>",
    "<!channel>",
    "$x^2$",
    "\n```\n",
    "\n```python\n",
    "```",
    "\n````\n",
    "\n~~~\n",
    "\n    ",
    "<think>",
    "</think>",
    "</thi",
    "nk>",
    "é",  # e + combining acute
    "\u0301",  # a lone combining mark
    "ñ̃",
    "😀",
    "👍🏽",
    "👩‍💻",
    "👨‍👩‍👧‍👦",
    "❤️",
    "🇺🇦",
    "🏴󠁧󠁢󠁥󠁮󠁧󠁿",
    "\u200d",
    "\ufe0f",
    "𝄞",
    "𝔘𝔫𝔦",
    "中文",
    "日本語の文",
    "שלום עולם",
    "مرحبا بالعالم",
    "कि",
    "w" * 120,
    " " * 90,
    "\n" * 40,
    "\n```" + "info" * 12 + "\n",  # an opener line with a long info string
    "https://example.com/" + "x" * 80,
]

# Any code point a model could send through JSON (lone surrogates cannot be encoded in UTF-8).
any_char = st.characters(exclude_categories=["Cs"])


def model_text(max_pieces: int = 60, max_repeat: int = 1) -> st.SearchStrategy[str]:
    """Model-like text from PIECES mixed with arbitrary characters, optionally repeated.

    Repeating a drawn stretch reaches real message limits (thousands of characters) without
    hypothesis having to choose every character one by one.
    """
    piece = st.sampled_from(PIECES) | st.text(any_char, min_size=1, max_size=8)
    sizes = st.integers(0, max_pieces)  # spread lengths out: bare lists stay short
    stretch = sizes.flatmap(lambda n: st.lists(piece, min_size=n, max_size=n)).map("".join)
    if max_repeat <= 1:
        return stretch
    return st.builds(lambda body, times, tail: body * times + tail,
                     stretch, st.integers(1, max_repeat), stretch)  # fmt: skip


def _deep_list(levels: int) -> str:
    """A list nested ``levels`` deep (two spaces per level)."""
    return "".join("  " * i + "- item\n" for i in range(levels))


# Markdown bombs a model could produce: long runs of markup characters, nesting as deep as it
# goes, fences left open, and patterns that make naive regular expressions backtrack.
BOMBS: dict[str, Callable[[int], str]] = {
    "stars": lambda n: "*" * n,
    "underscores": lambda n: "_" * n,
    "backticks": lambda n: "`" * n,
    "tildes": lambda n: "~" * n,
    "nested emphasis": lambda n: "*_" * n + "x" + "_*" * n,
    "open emphasis": lambda n: "**a" * n,
    "open underline": lambda n: "__a" * n,
    "open code": lambda n: "`a" * n,
    "open strike": lambda n: "~~a" * n,
    "unclosed links": lambda n: "[a](" * n,
    "unclosed images": lambda n: "![a](" * n,
    "brackets": lambda n: "[" * n + "]" * n,
    "parentheses": lambda n: "](" * n,
    "unclosed fence": lambda n: "```python\n" + "x = 1\n" * n,
    "fence runs": lambda n: "\n".join("`" * (3 + i % 7) for i in range(n)),
    "deep list": lambda n: _deep_list(min(n, 60)),
    "deep quote": lambda n: ">" * n + " deep",
    "quote lines": lambda n: "> q\n" * n,
    "headings": lambda n: "#" * n,
    "rules": lambda n: "\n\n".join(["***"] * n),
    "table": lambda n: "|" * n + "\n" + "|-" * n,
    "angles": lambda n: "<" * n + ">" * n,
    "ampersands": lambda n: "&" * n,
    "mixed": lambda n: "*_`~[](<>&|#" * n,
    "blank run": lambda n: "a" + " " * n + "\n" * n + "b",
    "long info string": lambda n: "```" + "x" * n + "\n" + "y" * (2 * n),
}


def bomb(max_size: int) -> st.SearchStrategy[str]:
    """One Markdown bomb, at most ``max_size`` characters."""
    return st.builds(
        lambda name, n: BOMBS[name](n)[:max_size],
        st.sampled_from(sorted(BOMBS)),
        st.integers(1, max_size),
    )


# Untrusted text that tries to make Slack ping (`<!here>`, `<@U…>`, `<#C…>`, `<!subteam^S…>`,
# directly or through a Markdown link or image whose target is one) or Telegram mention a user
# (`tg://user?id=`), in Markdown's link, image, autolink, reference and table syntax.
INJECTION_CHARS = "[]()!@<>^|#:/-UCShertpmailo0123 \n"
INJECTION_PIECES = [
    *INJECTION_CHARS,
    "](",
    "![",
    "]:",
    "![](",
    "\\",
    "&",
    "`",
    "```\n",
    "> ",
    "- ",
    "| a | b |\n|---|---|\n| ",
    "!here",
    "!channel",
    "!everyone",
    "!subteam^S0123|@team",
    "!date^1^{date}|x",
    "@U0123ABC",
    "#C0123|general",
    "<!here>",
    "<@U0123>",
    "&lt;",
    "&#60;",
    "http://",
    "https://",
    "HTTPS://",
    "mailto:",
    "tg://user?id=123",
    "tg://emoji?id=1234567890123456789",
    "javascript:alert(1)",
    "[x](",
    "[x](!here)",
    "[x][r]\n\n[r]: ",
    "\u200b",
]
injection_text = st.lists(st.sampled_from(INJECTION_PIECES), max_size=40).map("".join)


cut_points = st.lists(st.integers(min_value=0), max_size=40)


def chunked(text: str, cuts: list[int]) -> list[str]:
    """``text`` cut at the given positions (anywhere: inside tags, graphemes, markup)."""
    points = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


# The product's own per-message limits: Telegram's declared 4,000 UTF-16 units and Slack's
# SLACK_MESSAGE_CHARS code points (any allowed value), plus small limits for many rollovers.
small_limits = st.builds(
    SinkLimits,
    max_length=st.integers(16, 400),
    unit=st.sampled_from(LengthUnit),
    min_interval=st.sampled_from([0.05, 1.0]),
    supports_collapsed=st.booleans(),
    needs_final=st.booleans(),
)
product_limits = st.one_of(
    st.sampled_from([0.05, 1.0]).map(telegram_limits),
    st.integers(200, 12_000).map(slack_limits),
)


def on_virtual_time(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a fresh looptime loop: hours of pacing take no real time."""
    loop = looptime.new_event_loop()

    async def run() -> None:
        await main()

    try:
        loop.run_until_complete(run())
    finally:
        loop.close()


def on_real_time(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a fresh event loop (sockets, servers) and close it afterwards."""
    loop = asyncio.new_event_loop()

    async def run() -> None:
        await main()

    try:
        loop.run_until_complete(run())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
