"""Redis restarted 10 times while users talk to the Telegram bot.

Users write one message after another; meanwhile the bot's Redis is restarted ten times. The
restarts keep the data, as a Redis with persistence does (`SHUTDOWN SAVE`, then the same
server starts again on the same port and loads its dump), so what Redis held before a restart
must still hold after it. Every message must end with exactly one reply that is either the
answer or a clear error, and history must hold each answered turn once, whole, and nothing of
the turns that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import open_runtime
from bots.telegram.app import PHRASES, running
from bots.telegram.settings import TelegramSettings
from core.conversation import ConversationKey
from core.errors import StoreError
from core.settings import CoreSettings
from tests.chaos.invariants import (
    check_history,
    echo,
    load_history,
    lock_keys,
    questions,
)
from tests.chaos.support import restart_keeping_data
from tests.fakes.fake_telegram import FakeTelegram, User
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import SCALE
from tests.services import RedisServer
from tests.support.timing import patient

RESTARTS = 10
USERS = 12
DOWN = 0.6  # s: longer than redis-py's retries (about 0.15 s here), so writes meet the outage
# Replies that tell the user clearly that something failed (and what to do).
ERRORS = (StoreError.user_message, PHRASES.not_saved)
NOT_SAVED = f"\n\n{PHRASES.not_saved}"


@dataclass
class Talk:
    """One user's messages and the reply each got."""

    user: User
    asked: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)


def final(text: str, question: str) -> bool:
    """The whole answer, or a clear error (the answer may still get a "not saved" note)."""
    return text == echo(question) or text.endswith(ERRORS)


def replying(chat: int) -> bool:
    """Whether the bot still runs a reply in this private chat (its task is named after it)."""
    name = f"reply {chat}/{chat}"
    return any(task.get_name() == name for task in asyncio.all_tasks() if not task.done())


@pytest_asyncio.fixture
async def bot_on_own_redis(
    telegram: FakeTelegram, vllm: FakeVLLM, own_redis: RedisServer
) -> AsyncIterator[aioredis.Redis]:
    """Parley's Telegram bot (polling) on the restartable Redis; yields a client on it."""
    core = CoreSettings(
        _env_file=None,
        llm_base_url=vllm.base_url,
        redis_url=own_redis.url,
        quota_messages_per_minute=0,
        lock_lease_seconds=3,
        redis_timeout=1.0,
        shutdown_grace_seconds=2,
    )
    tg = TelegramSettings(
        _env_file=None,
        telegram_bot_token=telegram.token,
        telegram_api_url=telegram.url,
        telegram_chat_interval=1.0 * SCALE,
        telegram_group_messages_per_minute=20 / SCALE,
        telegram_bot_messages_per_second=30 / SCALE,
        telegram_poll_timeout=1,
    )
    client = aioredis.Redis.from_url(own_redis.url, socket_timeout=2)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(client.aclose)
        runtime = await stack.enter_async_context(open_runtime(core, phrases=PHRASES))
        await stack.enter_async_context(running(runtime, tg))
        yield client


async def talk(telegram: FakeTelegram, talk: Talk, calm: asyncio.Event) -> None:
    """Send a message, wait for its final reply, repeat (a short pause after an error, as a
    person would take) until one is answered after the last restart."""
    chat = talk.user.id
    while True:
        after_chaos = calm.is_set()
        question = f"message {len(talk.asked)} from {chat}"
        talk.asked.append(question)
        await telegram.private_text(talk.user, question)
        n = len(talk.asked)

        def replied(n: int = n, question: str = question) -> bool:
            texts = telegram.bot_texts(chat)
            return len(texts) >= n and final(texts[n - 1], question) and not replying(chat)

        await telegram.wait_for(replied, timeout=patient(8), what=f"a final reply to {question!r}")
        talk.replies.append(telegram.bot_texts(chat)[n - 1])
        if talk.replies[-1] == echo(question):
            if after_chaos:
                return
        else:
            await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_redis_restarted_10_times_during_traffic(
    telegram: FakeTelegram,
    vllm: FakeVLLM,
    own_redis: RedisServer,
    bot_on_own_redis: aioredis.Redis,
) -> None:
    vllm.token_interval = 0.003
    client = bot_on_own_redis
    talks = [Talk(telegram.new_user(f"U{n}")) for n in range(USERS)]
    calm = asyncio.Event()
    users = [asyncio.create_task(talk(telegram, t, calm)) for t in talks]
    downtime = []
    started = time.monotonic()
    for _ in range(RESTARTS):
        await asyncio.sleep(0.5)
        downtime.append(await asyncio.to_thread(restart_keeping_data, own_redis, DOWN))
    calm.set()
    elapsed = time.monotonic() - started
    # Each user ends with a message answered after the last restart.
    outcome = await asyncio.gather(*users, return_exceptions=True)
    recovered = time.monotonic() - started - elapsed
    await telegram.settle(0.3)
    stuck = [
        f"{t.user.id}: {telegram.bot_texts(t.user.id)[len(t.replies) :]!r}"
        for t, failure in zip(talks, outcome, strict=True)
        if failure is not None
    ]
    assert stuck == [], "messages without a final reply"

    kinds: Counter[str] = Counter()
    for t in talks:
        chat = t.user.id
        # Exactly one reply per message, and it never changed after it was final.
        assert telegram.bot_texts(chat) == t.replies
        key = ConversationKey("telegram", str(chat), str(chat))
        history = await load_history(client, key)
        assert check_history(str(key), history).problems == []
        stored = questions(history)
        for question, reply in zip(t.asked, t.replies, strict=True):
            if reply == echo(question):
                kinds["answered"] += 1
                assert stored.count(question) == 1, (question, stored)  # not lost, not doubled
            else:
                kinds[
                    "answered, not saved" if reply == echo(question) + NOT_SAVED else "error"
                ] += 1
                assert question not in stored  # a failed turn leaves nothing behind
        assert len(stored) == sum(r == echo(q) for q, r in zip(t.asked, t.replies, strict=True))
    assert await lock_keys(client) == []
    assert kinds["answered"] >= USERS
    print(
        f"\nredis restarts: {RESTARTS} restarts (down {min(downtime):.2f}-{max(downtime):.2f} s) "
        f"in {elapsed:.1f} s of traffic, every user answered again {recovered:.1f} s later; "
        f"{sum(kinds.values())} messages from {USERS} users: {dict(kinds)}"
    )
