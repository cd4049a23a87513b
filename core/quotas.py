"""Per-user limits shared by all replicas: messages per minute and tokens per day."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded

_DAY = 86_400


@dataclass(frozen=True, slots=True)
class QuotaVerdict:
    """Whether a message may go ahead, and if not, how long until it may."""

    allowed: bool
    wait_seconds: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """A user's consumption right now."""

    messages_this_minute: int
    tokens_today: int


class Quotas:
    """Fixed-window counters in Redis; a limit of 0 switches that quota off."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        messages_per_minute: int,
        tokens_per_day: int,
        keys: KeySpace | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._per_minute = messages_per_minute
        self._per_day = tokens_per_day
        self._keys = keys or KeySpace()
        self._now = now

    @property
    def messages_per_minute(self) -> int:
        """QUOTA_MESSAGES_PER_MINUTE (0: no limit)."""
        return self._per_minute

    @property
    def tokens_per_day(self) -> int:
        """QUOTA_TOKENS_PER_DAY (0: no limit)."""
        return self._per_day

    def seconds_to_new_day(self) -> int:
        """Until the daily token count starts again (UTC midnight)."""
        now = self._now()
        return int(_DAY - now % _DAY) + 1

    def _minute_key(self, platform: str, user: str, now: float) -> str:
        """Counter of this minute's messages."""
        return self._keys.named("quota", "m", platform, user, str(int(now // 60)))

    def _day_key(self, platform: str, user: str, now: float) -> str:
        """Counter of today's tokens (UTC day)."""
        return self._keys.named("quota", "t", platform, user, str(int(now // _DAY)))

    async def admit(self, platform: str, user: str) -> QuotaVerdict:
        """Count one message and say whether it is within the limits."""
        now = self._now()
        minute_key = self._minute_key(platform, user, now)
        day_key = self._day_key(platform, user, now)

        async def run() -> tuple[int, int]:
            # Two keys of two slots on a Cluster: no transaction. A minute counter is created
            # with its expiry (SET NX EX), so a counter never outlives its minute.
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(minute_key, 0, ex=120, nx=True)
                pipe.incr(minute_key)
                pipe.get(day_key)
                _, count, tokens = await pipe.execute()
            return int(count), int(tokens or 0)

        count, tokens = await guarded("quota", run)
        if self._per_day and tokens >= self._per_day:
            return QuotaVerdict(False, int(_DAY - now % _DAY) + 1, "tokens_per_day")
        if self._per_minute and count > self._per_minute:
            return QuotaVerdict(False, int(60 - now % 60) + 1, "messages_per_minute")
        return QuotaVerdict(True)

    async def spend_tokens(self, platform: str, user: str, tokens: int) -> None:
        """Add a finished turn's tokens to today's count."""
        if tokens <= 0:
            return
        key = self._day_key(platform, user, self._now())

        async def run() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incrby(key, tokens)
                pipe.expire(key, 2 * _DAY)
                await pipe.execute()

        await guarded("quota", run)

    async def forget(self, platform: str, user: str) -> None:
        """Delete the person's counters (/forget): this minute's and today's, and yesterday's."""
        now = self._now()
        names = [
            self._minute_key(platform, user, now),
            self._minute_key(platform, user, now - 60),
            self._day_key(platform, user, now),
            self._day_key(platform, user, now - _DAY),
        ]
        await guarded("quota", lambda: self._redis.unlink(*names))

    async def usage(self, platform: str, user: str) -> QuotaUsage:
        """What the user has used in the current windows."""
        now = self._now()

        async def run() -> list[object]:
            async with self._redis.pipeline(transaction=False) as pipe:  # two slots: no MGET
                pipe.get(self._minute_key(platform, user, now))
                pipe.get(self._day_key(platform, user, now))
                return list(await pipe.execute())

        minute, day = await guarded("quota", run)
        return QuotaUsage(_count(minute), _count(day))


def _count(raw: object) -> int:
    """A counter's value; a missing key counts 0."""
    return int(raw.decode() if isinstance(raw, bytes) else str(raw)) if raw else 0
