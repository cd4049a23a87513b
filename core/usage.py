"""Usage statistics for operators: users, turns and tokens per platform, today and in total."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from core.i18n import LANGUAGES
from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded

_DAY = 86_400
_KEEP_DAYS = 90


@dataclass(frozen=True, slots=True)
class PlatformUsage:
    """One platform's numbers over one period."""

    users: int = 0
    turns: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Today (UTC) and all-time numbers per platform."""

    today: dict[str, PlatformUsage] = field(default_factory=dict)
    total: dict[str, PlatformUsage] = field(default_factory=dict)
    # Conversations answered in each language (HyperLogLog estimates, exact for small counts).
    languages_today: dict[str, int] = field(default_factory=dict)
    languages_total: dict[str, int] = field(default_factory=dict)


def _text(value: object) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class UsageStats:
    """Counters in Redis hashes and HyperLogLogs, one pipeline per finished turn."""

    def __init__(
        self,
        redis: RedisClient,
        keys: KeySpace | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._keys = keys or KeySpace()
        self._now = now

    def _day(self) -> str:
        """Today's UTC day number."""
        return str(int(self._now() // _DAY))

    async def record_turn(
        self,
        platform: str,
        user: str,
        tokens_in: int,
        tokens_out: int,
        *,
        conversation: str = "",
        language: str = "",
    ) -> None:
        """Count one answered turn, and its conversation under the language it was answered in."""
        day = self._day()
        today, total = self._keys.named("usage", day), self._keys.named("usage", "total")
        users_today = self._keys.named("usage", day, "users", platform)
        users_total = self._keys.named("usage", "total", "users", platform)
        said_today = self._keys.named("usage", day, "language", language)
        said_total = self._keys.named("usage", "total", "language", language)

        async def run() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name in (today, total):
                    pipe.hincrby(name, f"{platform}:turns", 1)
                    pipe.hincrby(name, f"{platform}:tokens_in", tokens_in)
                    pipe.hincrby(name, f"{platform}:tokens_out", tokens_out)
                pipe.pfadd(users_today, user)
                pipe.pfadd(users_total, user)
                pipe.expire(today, _KEEP_DAYS * _DAY)
                pipe.expire(users_today, _KEEP_DAYS * _DAY)
                if conversation and language:
                    pipe.pfadd(said_today, conversation)
                    pipe.pfadd(said_total, conversation)
                    pipe.expire(said_today, _KEEP_DAYS * _DAY)
                await pipe.execute()

        await guarded("usage", run)

    async def report(self) -> UsageReport:
        """Numbers for `parley admin stats` and /stats."""
        day = self._day()

        async def period(scope: str) -> dict[str, PlatformUsage]:
            raw = await self._redis.hgetall(self._keys.named("usage", scope))
            numbers: dict[str, dict[str, int]] = defaultdict(dict)
            for key, value in raw.items():
                platform, _, metric = _text(key).rpartition(":")
                numbers[platform][metric] = int(_text(value))
            result = {}
            for platform, values in sorted(numbers.items()):
                users = await self._redis.pfcount(
                    self._keys.named("usage", scope, "users", platform)
                )
                result[platform] = PlatformUsage(
                    users=int(users),
                    turns=values.get("turns", 0),
                    tokens_in=values.get("tokens_in", 0),
                    tokens_out=values.get("tokens_out", 0),
                )
            return result

        async def languages(scope: str) -> dict[str, int]:
            counts = {}
            for language in LANGUAGES:
                count = await self._redis.pfcount(
                    self._keys.named("usage", scope, "language", language)
                )
                if count:
                    counts[language] = int(count)
            return counts

        async def run() -> UsageReport:
            return UsageReport(
                today=await period(day),
                total=await period("total"),
                languages_today=await languages(day),
                languages_total=await languages("total"),
            )

        return await guarded("usage", run)
