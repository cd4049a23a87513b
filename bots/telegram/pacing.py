"""Telegram's flood limits as shared budgets: per chat (all its topics and replies), per bot.

Every replica reserves slots on the same Redis keys, so two replicas answering in one group
still write at most once per slot. A 20-per-minute group budget without bursts is one write per
3 s; a single slot at the larger of the chat and group intervals enforces both rules with one
Redis round trip per write.
"""

from __future__ import annotations

from collections.abc import Callable

from core.pacing import RedisPacer, RedisWindowPacer
from core.sink import Pacer
from core.store.client import RedisClient
from core.store.keys import KeySpace

# Seconds added to the bot-wide window: a write admitted by it still goes through rendering,
# the HTTP stack and the network, and arrives a varying moment later; Telegram's own window
# counts arrivals. Costs about 9 % of the bot-wide rate at 30/s.
BOT_WINDOW_MARGIN = 0.1

PacerFactory = Callable[[str, float], Pacer]
WindowFactory = Callable[[str, int, float], Pacer]  # key, writes, per seconds


class ChatPacer:
    """The bot-wide budget, then the chat's; a 429 holds back only the chat it was about.

    The bot's slot queues the writers, the chat's slot spaces the chat's writes, and the
    bot-wide window, taken last, right before the request leaves, counts what was really sent:
    slots that fell due during a stall would otherwise all fire at once.
    """

    def __init__(
        self, chat: Pacer, bot: Pacer | None = None, bot_window: Pacer | None = None
    ) -> None:
        self._chat = chat
        self._bot = bot
        self._bot_window = bot_window

    async def acquire(self) -> None:
        """Wait for the bot's slot, the chat's, then room in the bot's window."""
        if self._bot is not None:
            await self._bot.acquire()
        await self._chat.acquire()
        if self._bot_window is not None:
            await self._bot_window.acquire()

    def penalize(self, retry_after: float) -> None:
        """Telegram's retry_after applies to the chat that got the 429, on every replica."""
        self._chat.penalize(retry_after)


class Pacers:
    """Builds the pacer for a chat; the state lives on the (shared) keys, not in this object."""

    def __init__(
        self,
        make: PacerFactory,
        *,
        window: WindowFactory | None = None,
        keys: KeySpace,
        bot_id: int | str,
        chat_interval: float = 1.0,
        group_per_minute: float = 20.0,
        bot_per_second: float = 30.0,
    ) -> None:
        self._make = make
        self._window = window
        self._keys = keys
        self._bot_id = str(bot_id)
        self.chat_interval = chat_interval
        self.group_interval = max(chat_interval, 60.0 / group_per_minute)
        self._bot_interval = 1.0 / bot_per_second if bot_per_second > 0 else 0.0

    @classmethod
    def on_redis(
        cls,
        redis: RedisClient,
        *,
        keys: KeySpace,
        bot_id: int | str,
        chat_interval: float = 1.0,
        group_per_minute: float = 20.0,
        bot_per_second: float = 30.0,
    ) -> Pacers:
        """The production budgets: RedisPacer slots every replica shares."""
        return cls(
            lambda key, interval: RedisPacer(redis, key, interval),
            window=lambda key, limit, seconds: RedisWindowPacer(redis, key, limit, seconds),
            keys=keys,
            bot_id=bot_id,
            chat_interval=chat_interval,
            group_per_minute=group_per_minute,
            bot_per_second=bot_per_second,
        )

    def interval(self, *, private: bool) -> float:
        """Seconds between writes in a chat of this kind."""
        return self.chat_interval if private else self.group_interval

    def for_chat(self, chat_id: int, *, private: bool) -> Pacer:
        """The budget every reply in ``chat_id`` shares."""
        chat = self._make(
            self._keys.named("telegram", "pace", self._bot_id, str(chat_id)),
            self.interval(private=private),
        )
        bot = window = None
        if self._bot_interval:
            bot = self._make(
                self._keys.named("telegram", "pace", self._bot_id, "bot"), self._bot_interval
            )
        if self._bot_interval and self._window is not None:
            per_second = 1.0 / self._bot_interval
            writes = max(1, int(per_second))
            window = self._window(
                self._keys.named("telegram", "pace", self._bot_id, "sent"),
                writes,
                writes / per_second + BOT_WINDOW_MARGIN,
            )
        return ChatPacer(chat, bot, window)
