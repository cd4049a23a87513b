"""Once-only marks in Redis: a redelivered update, a notice already given this minute."""

from __future__ import annotations

import logging

from core.store.client import REDIS_FAILURES, RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import raise_if_cancelling

log = logging.getLogger(__name__)


class OnceMarks:
    """SET NX EX under Parley's prefix: whoever sets a mark first, across replicas, goes ahead."""

    def __init__(self, redis: RedisClient, keys: KeySpace) -> None:
        self._redis = redis
        self._keys = keys

    async def first(self, *parts: str, ttl: float, unreachable: bool = True) -> bool:
        """True the first time within ``ttl`` seconds; ``unreachable`` is the answer without Redis.

        Deduplication answers True without Redis (answering twice beats not answering); a
        notice that may be skipped answers False (silence beats a flood of notices).
        """
        key = self._keys.named(*parts)
        try:
            return bool(await self._redis.set(key, 1, nx=True, px=max(1, int(ttl * 1000))))
        except REDIS_FAILURES as exc:
            raise_if_cancelling(exc)
            log.warning("once-mark %s unavailable (%s)", key, exc)
            return unreachable

    async def clear(self, *parts: str) -> None:
        """Remove a mark (forgetting a user)."""
        try:
            await self._redis.unlink(self._keys.named(*parts))
        except REDIS_FAILURES as exc:
            raise_if_cancelling(exc)
            log.warning("could not clear a once-mark: %s", exc)
