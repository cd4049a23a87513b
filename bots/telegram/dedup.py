"""Each update_id is handled once, even when Telegram redelivers it or two replicas both get it."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.store.keys import KeySpace

log = logging.getLogger(__name__)


class UpdateDeduplicator:
    """Claims an update id with one SET NX EX: whoever sets it first handles the update."""

    def __init__(
        self, redis: Redis, *, keys: KeySpace, bot_id: int | str, ttl_seconds: int = 24 * 3600
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._bot_id = str(bot_id)
        self._ttl = ttl_seconds  # Telegram keeps undelivered updates for 24 hours

    async def claim(self, update_id: int) -> bool:
        """True the first time ``update_id`` is seen; fails open if Redis is unreachable."""
        key = self._keys.named("telegram", "update", self._bot_id, str(update_id))
        try:
            return bool(await self._redis.set(key, "1", nx=True, ex=self._ttl))
        except (RedisError, OSError) as exc:
            # Answering twice is better than not answering: the turn itself still needs Redis
            # and will tell the user if it cannot run.
            log.warning("update dedup unavailable (%s); handling update %d", exc, update_id)
            return True
