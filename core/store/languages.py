"""Each person's /language choice in Redis: one small string key per person, own hash tag."""

from __future__ import annotations

from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded


class RedisLanguageChoices:
    """No time to live: a choice lasts until /language auto or /forget."""

    def __init__(self, redis: RedisClient, keys: KeySpace | None = None) -> None:
        self._redis = redis
        self._keys = keys or KeySpace()

    async def get(self, platform: str, user: str) -> str:
        """One GET ('' when the person chose nothing)."""
        key = self._keys.language(platform, user)
        value = await guarded("language", lambda: self._redis.get(key))
        if value is None:
            return ""
        return value.decode() if isinstance(value, bytes) else str(value)

    async def set(self, platform: str, user: str, language: str) -> None:
        """One SET."""
        key = self._keys.language(platform, user)
        await guarded("language", lambda: self._redis.set(key, language))

    async def delete(self, platform: str, user: str) -> bool:
        """One UNLINK; True if there was a choice."""
        key = self._keys.language(platform, user)
        return bool(await guarded("language", lambda: self._redis.unlink(key)))
