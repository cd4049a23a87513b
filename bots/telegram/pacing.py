"""Telegram's flood limits as shared budgets: per chat (all its topics and replies), per bot.

Every replica takes its writes from the same Redis keys, so two replicas answering in one group
still write at most once per slot. A 20-per-minute group budget without bursts is one write per
3 s; one spacing at the larger of the chat and group intervals enforces both rules. A write takes
the chat's spacing, the bot's queue slot and room in the bot's window in one script: one Redis
round trip per write while the bot is under its 30 per second.
"""

from __future__ import annotations

from core.clock import Clock
from core.pacing import RedisBudgetPacer, Spacing, Window
from core.sink import Pacer
from core.store.client import RedisClient
from core.store.keys import KeySpace

# Seconds added to the bot-wide window: a write admitted by it still goes through rendering,
# the HTTP stack and the network, and arrives a varying moment later; Telegram's own window
# counts arrivals. Costs about 9 % of the bot-wide rate at 30/s.
BOT_WINDOW_MARGIN = 0.1
# The most writes the bot-wide window admits at once: Telegram's own allowance per window.
# A faster configured rate shortens the window instead of widening the burst, so writes held
# up by a stall never leave more than this many at a time.
BOT_WINDOW_WRITES = 30
_GROUP = "tgpace"  # the hash tag's group: every budget of one bot on one cluster slot


class Pacers:
    """Builds the pacer for a chat; the state lives on the (shared) keys, not in this object.

    The bot's queue slot keeps writers in line, the chat's spacing spaces the chat's writes,
    and the bot-wide window counts what was really sent: slots that fell due during a stall
    would otherwise all fire at once. A 429 holds back only the chat it was about.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        keys: KeySpace,
        bot_id: int | str,
        chat_interval: float = 1.0,
        group_per_minute: float = 20.0,
        bot_per_second: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._bot_id = str(bot_id)
        self._clock = clock
        self.chat_interval = chat_interval
        self.group_interval = max(chat_interval, 60.0 / group_per_minute)
        self._bot_per_second = bot_per_second

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
        clock: Clock | None = None,
    ) -> Pacers:
        """The production budgets, in the Redis every replica shares."""
        return cls(
            redis,
            keys=keys,
            bot_id=bot_id,
            chat_interval=chat_interval,
            group_per_minute=group_per_minute,
            bot_per_second=bot_per_second,
            clock=clock,
        )

    def interval(self, *, private: bool) -> float:
        """Seconds between writes in a chat of this kind."""
        return self.chat_interval if private else self.group_interval

    def for_chat(self, chat_id: int, *, private: bool) -> Pacer:
        """The budget every reply in ``chat_id`` shares."""
        chat = Spacing(self._key("chat", str(chat_id)), self.interval(private=private))
        queue = window = None
        if self._bot_per_second > 0:
            queue = Spacing(self._key("bot"), 1.0 / self._bot_per_second)
            writes = max(1, min(int(self._bot_per_second), BOT_WINDOW_WRITES))
            window = Window(
                self._key("sent"), writes, writes / self._bot_per_second + BOT_WINDOW_MARGIN
            )
        return RedisBudgetPacer(self._redis, [chat], queue=queue, window=window, clock=self._clock)

    def _key(self, *parts: str) -> str:
        """One of this bot's budget keys, all under one hash tag."""
        return self._keys.budget(_GROUP, self._bot_id, *parts)
