"""Fixtures: the fake Bot API, a fake vLLM, the session's real Redis, and Parley's bot.

Every rate window is scaled by ``SCALE`` on both sides (the fake's flood rules and the bot's
budgets), so the tests check real pacing behaviour in a tenth of the time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol

import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import open_runtime
from bots.telegram.app import PHRASES, TelegramBot, running
from bots.telegram.settings import TelegramSettings
from core.settings import CoreSettings
from tests.fakes.fake_telegram import FakeTelegram, RateRules
from tests.fakes.fake_vllm import FakeVLLM
from tests.services import RedisServer

SCALE = 0.1  # 1 s per chat → 0.1 s; 20 per minute in groups → 20 per 6 s
ADMIN_ID = 4242


@pytest_asyncio.fixture
async def redis(redis_client: aioredis.Redis) -> aioredis.Redis:
    """The session's real Redis (tests/conftest.py), emptied for this test."""
    return redis_client


@pytest_asyncio.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API with Telegram's flood rules scaled by SCALE."""
    fake = FakeTelegram(rules=RateRules(time_scale=SCALE))
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def vllm() -> AsyncIterator[FakeVLLM]:
    """A fake vLLM with a large context, streaming a token every millisecond."""
    fake = FakeVLLM(max_model_len=32768, token_interval=0.001)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


class BotFactory(Protocol):
    """Starts Parley's Telegram bot against the fakes; stopped at teardown."""

    def __call__(
        self,
        *,
        core: dict[str, Any] | None = None,
        tg: dict[str, Any] | None = None,
        scale: float = SCALE,
    ) -> Awaitable[TelegramBot]: ...


@pytest_asyncio.fixture
async def start_bot(
    telegram: FakeTelegram, vllm: FakeVLLM, redis_server: RedisServer, redis: aioredis.Redis
) -> AsyncIterator[BotFactory]:
    """Build settings like an operator would (env names), open the runtime, run the bot."""
    async with contextlib.AsyncExitStack() as stack:

        async def factory(
            *,
            core: dict[str, Any] | None = None,
            tg: dict[str, Any] | None = None,
            scale: float = SCALE,
        ) -> TelegramBot:
            telegram.rules.time_scale = scale
            core_settings = CoreSettings(
                **{
                    "llm_base_url": vllm.base_url,
                    "redis_url": redis_server.url,
                    "admin_ids": f"telegram:{ADMIN_ID}",
                    "llm_max_tokens": 8192,
                    **(core or {}),
                }
            )
            tg_settings = TelegramSettings(
                **{
                    "telegram_bot_token": telegram.token,
                    "telegram_api_url": telegram.url,
                    "telegram_chat_interval": 1.0 * scale,
                    "telegram_group_messages_per_minute": 20 / scale,
                    "telegram_bot_messages_per_second": 30 / scale,
                    "telegram_poll_timeout": 1,
                    **(tg or {}),
                }
            )
            runtime = await stack.enter_async_context(open_runtime(core_settings, phrases=PHRASES))
            return await stack.enter_async_context(running(runtime, tg_settings))

        yield factory


async def idle(bot: TelegramBot, telegram: FakeTelegram, *, timeout: float = 30.0) -> None:
    """Wait until every update is fetched and handled, no reply runs, and the fake is quiet."""
    handlers = bot.handlers
    assert handlers is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await telegram.settle(0.2, timeout=timeout)
        if not telegram.queued() and bot.application.update_queue.empty() and not handlers.busy:
            return
        if loop.time() > deadline:
            raise AssertionError("the bot is still busy")
