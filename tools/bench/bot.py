"""Parley's production path, built the way the Telegram adapter builds it, plus pacing stamps.

Per conversation: ``ChatService.handle`` (real Redis lease, load, fit, save), the real
``OpenAICompatibleClient``, ``ReplyStream``, the Telegram ``EditSink`` rendering entities and
calling python-telegram-bot, and the shared Redis budgets from ``bots.telegram.pacing``.
Only update intake (polling, routing, dedup — once per turn, not per token) is skipped: each
turn starts with a direct ``handle`` call.

To measure edit lag, the pacers' clock notes the slot each write was allowed at (a context
variable of the reply's writer task) and the Bot API request carries it to the fake platform as
``bench_slot``, where it is compared with the request's arrival.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from telegram import Bot
from telegram._utils.types import ODVInput
from telegram.request import BaseRequest, RequestData

from bots.gc_tuning import tune_for_serving
from bots.runtime import Runtime, open_runtime
from bots.telegram.app import PHRASES
from bots.telegram.pacing import Pacers
from bots.telegram.request import AiohttpRequest
from bots.telegram.sink import EditSink, ReplyTarget, telegram_limits
from core.conversation import ConversationKey, IncomingMessage
from core.results import TurnResult
from core.settings import CoreSettings
from core.sink import Pacer
from tools.bench.env import Env

SLOT: ContextVar[float | None] = ContextVar("bench_slot", default=None)
TOKEN = "123456789:AAF-fake-token_for_tests"  # noqa: S105 (FakeTelegram's default token)
_WRITES = ("/sendMessage", "/editMessageText")


class SlotClock:
    """The loop's clock; a pacer's sleep notes the moment it ends, i.e. the granted slot."""

    def now(self) -> float:
        """Monotonic seconds (asyncio's loop time is time.monotonic)."""
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        """Note the slot, then wait for it."""
        seconds = max(0.0, seconds)
        SLOT.set(self.now() + seconds)
        await asyncio.sleep(seconds)


class StampingPacer:
    """Wraps a chat's pacer: after ``acquire`` SLOT holds when the write was allowed."""

    def __init__(self, inner: Pacer) -> None:
        self._inner = inner

    async def acquire(self) -> None:
        """Without a wait the write was allowed when it asked (Redis round trip included)."""
        SLOT.set(None)
        asked = asyncio.get_running_loop().time()
        await self._inner.acquire()
        if SLOT.get() is None:
            SLOT.set(asked)

    def penalize(self, retry_after: float) -> None:
        """Pass a 429 on."""
        self._inner.penalize(retry_after)


class StampingRequest(AiohttpRequest):
    """The adapter's Bot API request (bots.telegram.request); writes carry their pacer slot."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Add ``bench_slot`` to sendMessage/editMessageText sent from a reply's writer."""
        slot = SLOT.get()
        if slot is not None and url.endswith(_WRITES):
            url = f"{url}?bench_slot={slot!r}"
        return await super().do_request(
            url, method, request_data, read_timeout, write_timeout, connect_timeout, pool_timeout
        )


@dataclass(frozen=True)
class Pacing:
    """Telegram's budgets as the adapter's settings express them."""

    chat_interval: float = 1.0
    group_per_minute: float = 20.0
    bot_per_second: float = 30.0  # 0 = no bot-wide budget


@dataclass
class BenchBot:
    """One bot process's worth of Parley, pointed at the benchmark's helpers."""

    runtime: Runtime
    bot: Bot
    pacers: Pacers

    def sink(self, chat_id: int, *, private: bool = True) -> EditSink:
        """What TelegramHandlers.sink builds in edit mode, with a stamping pacer."""
        return EditSink(
            self.bot,
            ReplyTarget(chat_id, private),
            pacer=StampingPacer(self.pacers.for_chat(chat_id, private=private)),
            limits=telegram_limits(self.pacers.interval(private=private)),
        )

    async def converse(self, chat_id: int, text: str, *, private: bool = True) -> TurnResult:
        """One user message in one chat, answered end to end; the model sees ``[chat id]``."""
        user = str(chat_id if private else 10_000 + abs(chat_id))
        key = ConversationKey("telegram", str(chat_id), user)
        message = IncomingMessage(key, f"[chat {chat_id}] {text}", user_id=user)
        return await self.runtime.service.handle(message, self.sink(chat_id, private=private))


def core_settings(llm_base_url: str, redis_url: str) -> CoreSettings:
    """Production defaults, the bounded Redis pool included; only the services' addresses differ."""
    values: dict[str, Any] = {"llm_base_url": llm_base_url, "redis_url": SecretStr(redis_url)}
    return CoreSettings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(
    env: Env, pacing: Pacing, *, llm_base_url: str | None = None
) -> AsyncIterator[BenchBot]:
    """Open the runtime (Redis emptied first) and a Bot for the fake platform."""
    os.environ.setdefault("PTB_TIMEDELTA", "true")  # as bots.telegram.app does
    settings = core_settings(llm_base_url or f"{env.model.url}/v1", env.redis.url)
    async with open_runtime(settings, phrases=PHRASES) as runtime:
        await runtime.redis.flushall()
        request = StampingRequest(
            connection_pool_size=512,
            connect_timeout=10.0,
            read_timeout=10.0,
            write_timeout=10.0,
            pool_timeout=10.0,
        )
        bot = Bot(TOKEN, base_url=f"{env.platform.url}/bot", request=request)
        clock = SlotClock()
        pacers = Pacers.on_redis(
            runtime.redis,
            keys=runtime.keys,
            bot_id=TOKEN.split(":", 1)[0],
            chat_interval=pacing.chat_interval,
            group_per_minute=pacing.group_per_minute,
            bot_per_second=pacing.bot_per_second,
            clock=clock,
        )
        async with bot:
            tune_for_serving()  # as `parley telegram` does once it is wired
            yield BenchBot(runtime, bot, pacers)
