"""Bad input end to end: Telegram, Slack and the terminal chat against the fakes and real Redis.

From users: 1 MB of text, only whitespace, control characters, right-to-left text and lone
surrogates (which JSON carries as "\\ud800" escapes, and a terminal as bytes that are not UTF-8).
From the model: Markdown bombs (long runs and deep nesting of markup, unclosed fences, and the
inputs that once hung the layout or stalled Slack's renderer).

Each time the user gets a clear message (an answer, or why there is none), every message stays
within its platform's limits, the bot logs no error or stack trace (the fakes' own logs, e.g.
a request the bot's client gave up on under load, are not the bot's: tests.support.logs), and
the stored history keeps the earlier turns.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from core.phrases import Phrases
from core.store.keys import KeySpace
from tests.fakes.fake_slack import TEXT_LIMIT, Message
from tests.fakes.fake_telegram import MAX_TEXT_UTF16, FakeTelegram, utf16_len
from tests.fakes.fake_vllm import FakeVLLM, Reply, default_responder
from tests.fakes.fixtures import FakeVLLMFactory
from tests.integration.slack import conftest as slack_fixtures
from tests.integration.slack.conftest import RunningBot, fake_slack, redis_url
from tests.integration.telegram import conftest as telegram_fixtures
from tests.integration.telegram.conftest import BotFactory, idle, redis, telegram, vllm
from tests.integration.test_chat_cli import chat_env, run_chat
from tests.services import RedisServer
from tests.support.logs import assert_no_errors_logged
from tests.support.timing import patient

# Both adapters' conftests call their bot fixture `start_bot`: the same fixtures, renamed here.
telegram_bot = pytest_asyncio.fixture(name="telegram_bot")(
    inspect.unwrap(telegram_fixtures.start_bot)
)
slack_bot = pytest_asyncio.fixture(name="slack_bot")(inspect.unwrap(slack_fixtures.start_bot))
__all__ = ["fake_slack", "redis", "redis_url", "telegram", "vllm"]  # fixtures used by name

PHRASES = Phrases()
TOO_LONG = PHRASES.too_long.split(":", 1)[0]  # "Your message is too long for the model"
ONE_MB = ("The quick brown fox jumps over the lazy dog. " * 23_000)[:1_000_000]
WHITESPACE = " \t \n\n\u3000\u00a0 \r\n "
CONTROLS, CONTROLS_CLEAN = "Hi\x00\x07\x1b[31m the\x7fre\x85!", "Hi[31m there!"
RTL = "שלום עולם, مرحبا بالعالم \u200fok\u200e"
SURROGATES, SURROGATES_CLEAN = "lone \ud800 high, \udfff low", "lone  high,  low"

# What the model may send back. Sizes stay within the reply budget (8,192 tokens).
BOMBS = {
    "stars": "*" * 10_000,
    "underscores": "_" * 10_000,
    "backticks": "`" * 10_000,
    "nested markup": "*_`" * 3_334,
    "unclosed fence": "```python\n" + 'print("x")\n' * 800,
    "5000 list levels": "- " * 5_000 + "deep",
    "5000 quote levels": ">" * 5_000 + " deep",
    "ordered lists": "1. " * 2_500 + "x",
    "unclosed links": "[a](" * 2_500,  # took Slack's renderer 12 s+ per edit
    "long fence info": "```" + "x" * 1_500 + "\n" + "y" * 6_000,  # hung the layout for ever
}
BOMB_PREFIX = "BOMB:"


def responder(messages: list[dict[str, str]]) -> Reply:
    """The fake model: a bomb when asked for one, else the default echo ("You said: …")."""
    last = messages[-1]["content"] if messages else ""
    if last.startswith(BOMB_PREFIX):
        return Reply("Let me write something awkward.", BOMBS[last.removeprefix(BOMB_PREFIX)])
    return default_responder(messages)


async def stored(redis_client: aioredis.Redis, platform: str, chat: str) -> list[str]:
    """Every stored message of a chat's conversations, oldest first."""
    keys = [
        k async for k in redis_client.scan_iter(match=KeySpace().history_pattern(platform, chat))
    ]
    assert len(keys) == 1, keys
    raws = await redis_client.lrange(keys[0], 0, -1)
    return [str(orjson.loads(raw)["c"]) for raw in raws]


def user_turns(vllm: FakeVLLM) -> list[str]:
    """The user messages of the last request the model server got."""
    return [m["content"] for m in vllm.requests[-1]["messages"] if m["role"] == "user"]


# -- Telegram -------------------------------------------------------------------------------------


async def test_telegram_user_input(
    telegram_bot: BotFactory,
    telegram: FakeTelegram,
    vllm: FakeVLLM,
    redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    vllm.token_interval = 0.0
    bot = await telegram_bot()
    ada = telegram.new_user("Ada")

    async def say(text: str) -> str:
        before = len(telegram.bot_messages(ada.id))
        await telegram.private_text(ada, text)
        await idle(bot, telegram)
        (reply,) = telegram.bot_messages(ada.id)[before:]
        assert utf16_len(reply.text) <= MAX_TEXT_UTF16
        return reply.text

    assert await say("My name is Ada.") == "You said: My name is Ada."
    assert (await say(ONE_MB)).startswith(TOO_LONG)
    assert await say(WHITESPACE) == PHRASES.empty_message
    assert await say(CONTROLS) == f"You said: {CONTROLS_CLEAN}"
    assert user_turns(vllm)[-1] == CONTROLS_CLEAN
    assert await say(RTL) == f"You said: {RTL}"
    assert await say(SURROGATES) == f"You said: {SURROGATES_CLEAN}"
    assert await say("What is my name?") == "You said: What is my name?"

    answered = ["My name is Ada.", CONTROLS_CLEAN, RTL, SURROGATES_CLEAN, "What is my name?"]
    assert user_turns(vllm) == answered  # every answered turn was in the model's context
    history = await stored(redis, "telegram", str(ada.id))
    assert history == [text for turn in answered for text in (turn, f"You said: {turn}")]
    assert telegram.errors() == []
    assert_no_errors_logged(caplog)  # the bot's logs: a fake's are not its errors


async def test_telegram_markdown_bombs_from_the_model(
    telegram_bot: BotFactory,
    telegram: FakeTelegram,
    vllm: FakeVLLM,
    redis: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    vllm.token_interval = 0.0
    vllm.responder = responder
    bot = await telegram_bot()
    users = {name: telegram.new_user(f"User {index}") for index, name in enumerate(BOMBS)}
    for user in users.values():
        await telegram.private_text(user, "hello")
    await idle(bot, telegram)
    for name, user in users.items():  # all at once: the bombs stream side by side
        await telegram.private_text(user, BOMB_PREFIX + name)
    await idle(bot, telegram, timeout=60)

    for name, user in users.items():
        first, *reply = telegram.bot_messages(user.id)
        assert first.text == "You said: hello"
        assert reply, f"{name}: no reply"
        for message in reply:
            assert message.text.strip(), name
            assert utf16_len(message.text) <= MAX_TEXT_UTF16, name
        assert not any(PHRASES.cut_short in m.text for m in reply), name
        history = await stored(redis, "telegram", str(user.id))
        assert history == ["hello", "You said: hello", BOMB_PREFIX + name, BOMBS[name].strip()]
    assert [e for e in telegram.errors() if "too long" in (e.description or "")] == []
    assert_no_errors_logged(caplog)  # the bot's logs: a fake's are not its errors


# -- Slack ----------------------------------------------------------------------------------------


async def start_slack(slack_bot: Any, fake_vllm: FakeVLLM) -> RunningBot:
    """The Slack bot with a model roomy enough for the bombs, streaming without delay."""
    fake_vllm.max_model_len = 32_768
    fake_vllm.responder = responder
    bot: RunningBot = await slack_bot(llm_max_tokens=8_192)
    return bot


def assert_within_slack_limits(replies: list[Message]) -> None:
    """Every version of every reply fitted Slack's text limit and showed something."""
    for reply in replies:
        assert reply.visible.strip()
        assert all(len(version) <= TEXT_LIMIT for version in reply.history)


async def test_slack_user_input(
    slack_bot: Any,
    fake_vllm: FakeVLLM,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bot = await start_slack(slack_bot, fake_vllm)
    channel = "D0ADA"
    count = 0

    async def say(text: str) -> str:
        nonlocal count
        await bot.dm("U0ADA", text, channel=channel)
        count += 1
        replies = await bot.answered(channel, None, count=count)
        assert len(replies) == count
        assert_within_slack_limits(replies)
        return replies[-1].visible

    assert await say("My name is Ada.") == "You said: My name is Ada."
    assert (await say(ONE_MB)).startswith(TOO_LONG)
    assert await say(CONTROLS) == f"You said: {CONTROLS_CLEAN}"
    assert user_turns(fake_vllm)[-1] == CONTROLS_CLEAN
    assert await say(RTL) == f"You said: {RTL}"
    assert await say(SURROGATES) == f"You said: {SURROGATES_CLEAN}"
    assert await say("What is my name?") == "You said: What is my name?"

    answered = ["My name is Ada.", CONTROLS_CLEAN, RTL, SURROGATES_CLEAN, "What is my name?"]
    assert user_turns(fake_vllm) == answered
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        history = await stored(client, "slack", channel)
    finally:
        await client.aclose()
    assert history == [text for turn in answered for text in (turn, f"You said: {turn}")]
    assert not [c for c in bot.slack.calls if not c.ok and c.error != "ratelimited"]
    assert_no_errors_logged(caplog)  # the bot's logs: a fake's are not its errors


async def test_slack_whitespace_only_gets_a_hint(
    slack_bot: Any, fake_vllm: FakeVLLM, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await start_slack(slack_bot, fake_vllm)
    await bot.dm("U0ADA", WHITESPACE, channel="D0ADA")
    (reply,) = await bot.answered("D0ADA", None, timeout=patient(3))
    assert reply.visible == PHRASES.empty_message
    assert_no_errors_logged(caplog)


async def test_slack_markdown_bombs_from_the_model(
    slack_bot: Any,
    fake_vllm: FakeVLLM,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    bot = await start_slack(slack_bot, fake_vllm)
    channels = {name: f"D0BOMB{index}" for index, name in enumerate(BOMBS)}
    await asyncio.gather(*(bot.dm(f"U0B{c}", "hello", channel=c) for c in channels.values()))
    await bot.idle(timeout=30)
    await asyncio.gather(
        *(bot.dm(f"U0B{c}", BOMB_PREFIX + name, channel=c) for name, c in channels.items())
    )
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        for name, channel in channels.items():
            replies = await bot.answered(channel, None, count=2, timeout=60)
            first, *reply = replies
            assert first.visible == "You said: hello"
            assert reply, f"{name}: no reply"
            assert_within_slack_limits(replies)
            history = await stored(client, "slack", channel)
            assert history == ["hello", "You said: hello", BOMB_PREFIX + name, BOMBS[name].strip()]
    finally:
        await client.aclose()
    assert not [c for c in bot.slack.calls if c.error == "msg_too_long"]
    assert_no_errors_logged(caplog)  # the bot's logs: a fake's are not its errors


# -- the terminal chat ----------------------------------------------------------------------------


async def test_terminal_chat(
    fake_vllm_factory: FakeVLLMFactory,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    fake = await fake_vllm_factory(max_model_len=32_768, responder=responder)
    env = chat_env(fake, redis_server, tmp_path)
    env["LLM_MAX_TOKENS"] = "8192"
    lines = [
        b"My name is Ada.",
        ONE_MB.encode(),
        WHITESPACE.replace("\n", "").replace("\r", "").encode(),  # one line of blanks
        CONTROLS.encode(),
        RTL.encode(),
        b"lone \xed\xa0\x80 high, \xed\xbf\xbf low",  # lone surrogates, WTF-8 encoded
        (BOMB_PREFIX + "stars").encode(),
        (BOMB_PREFIX + "5000 list levels").encode(),
        b"What is my name?",
    ]
    out, err, code = await run_chat(env, b"\n".join(lines) + b"\n")
    assert code == 0, err
    assert "Traceback" not in err
    assert "ERROR" not in err
    shown = out.splitlines()
    assert shown[0] == "You said: My name is Ada."
    assert shown[1].startswith(TOO_LONG)
    assert shown[2:] == [  # a blank line is skipped, as a terminal does
        f"You said: {CONTROLS_CLEAN}",
        f"You said: {RTL}",
        f"You said: {SURROGATES_CLEAN}",
        BOMBS["stars"],
        BOMBS["5000 list levels"],
        "You said: What is my name?",
    ]
    answered = {  # the too-long message is not among them, nor the blank line
        "My name is Ada.": "You said: My name is Ada.",
        CONTROLS_CLEAN: f"You said: {CONTROLS_CLEAN}",
        RTL: f"You said: {RTL}",
        SURROGATES_CLEAN: f"You said: {SURROGATES_CLEAN}",
        BOMB_PREFIX + "stars": BOMBS["stars"],
        BOMB_PREFIX + "5000 list levels": BOMBS["5000 list levels"],
        "What is my name?": "You said: What is my name?",
    }
    history = await stored(redis_client, "terminal", "local")
    assert history == [text for turn in answered.items() for text in turn]
