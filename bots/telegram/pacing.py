"""Telegram's flood limits as shared budgets: per chat (all its topics and replies), per bot.

Every replica reserves slots on the same Redis keys, so two replicas answering in one group
still write at most once per slot. A 20-per-minute group budget without bursts is one write per
3 s; a single slot at the larger of the chat and group intervals enforces both rules with one
Redis round trip per write.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from core.pacing import RedisPacer
from core.sink import Pacer
from core.store.keys import KeySpace

PacerFactory = Callable[[str, float], Pacer]


class ChatPacer:
    """The bot-wide budget, then the chat's; a 429 holds back only the chat it was about.

    The chat's slot is taken last, right before the request leaves: waiting for the bot-wide
    slot after it would delay the write past its slot and squeeze the chat's next interval.
    """

    def __init__(self, chat: Pacer, bot: Pacer | None = None) -> None:
        self._chat = chat
        self._bot = bot

    async def acquire(self) -> None:
        """Wait for the bot's slot, then for the chat's."""
        if self._bot is not None:
            await self._bot.acquire()
        await self._chat.acquire()

    def penalize(self, retry_after: float) -> None:
        """Telegram's retry_after applies to the chat that got the 429, on every replica."""
        self._chat.penalize(retry_after)


class Pacers:
    """Builds the pacer for a chat; the state lives on the (shared) keys, not in this object."""

    def __init__(
        self,
        make: PacerFactory,
        *,
        keys: KeySpace,
        bot_id: int | str,
        chat_interval: float = 1.0,
        group_per_minute: float = 20.0,
        bot_per_second: float = 30.0,
    ) -> None:
        self._make = make
        self._keys = keys
        self._bot_id = str(bot_id)
        self.chat_interval = chat_interval
        self.group_interval = max(chat_interval, 60.0 / group_per_minute)
        self._bot_interval = 1.0 / bot_per_second if bot_per_second > 0 else 0.0

    @classmethod
    def on_redis(
        cls,
        redis: Redis,
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
        bot = None
        if self._bot_interval:
            bot = self._make(
                self._keys.named("telegram", "pace", self._bot_id, "bot"), self._bot_interval
            )
        return ChatPacer(chat, bot)
