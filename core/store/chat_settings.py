"""Chat settings in Redis: one hash per chat, under its own hash tag (fine on a Cluster)."""

from __future__ import annotations

from collections import Counter

from core.chat_settings import ChatScope, ChatSettings
from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded

_PERSONA = "persona"
_INSTRUCTIONS = "instructions"
_SCAN_BATCH = 500


def _text(value: bytes | str | None) -> str:
    """A hash field as text ('' when absent)."""
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RedisChatSettings:
    """Settings survive restarts and /reset; they have no time to live (they are tiny)."""

    def __init__(self, redis: RedisClient, keys: KeySpace | None = None) -> None:
        self._redis = redis
        self._keys = keys or KeySpace()

    def _key(self, scope: ChatScope) -> str:
        return self._keys.chat_settings(scope.platform, scope.chat)

    async def get(self, scope: ChatScope) -> ChatSettings:
        """One HGETALL."""
        raw = await guarded("settings", lambda: self._redis.hgetall(self._key(scope)))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return ChatSettings(fields.get(_PERSONA, ""), fields.get(_INSTRUCTIONS, ""))

    async def set_persona(self, scope: ChatScope, persona: str) -> None:
        """One HSET."""
        key = self._key(scope)
        await guarded("settings", lambda: self._redis.hset(key, _PERSONA, persona))

    async def set_instructions(self, scope: ChatScope, instructions: str) -> bool:
        """HSET, or HDEL for ''."""
        key = self._key(scope)
        if instructions:
            await guarded("settings", lambda: self._redis.hset(key, _INSTRUCTIONS, instructions))
            return True
        removed = await guarded("settings", lambda: self._redis.hdel(key, _INSTRUCTIONS))
        return bool(removed)

    async def delete(self, scope: ChatScope) -> bool:
        """One UNLINK."""
        removed = await guarded("settings", lambda: self._redis.unlink(self._key(scope)))
        return bool(removed)

    async def persona_counts(self) -> dict[str, int]:
        """SCAN the settings hashes, reading each one's persona (one round trip per batch)."""
        pattern = f"{self._keys.prefix}:{{settings|*"

        async def run() -> dict[str, int]:
            counts: Counter[str] = Counter()
            batch: list[bytes | str] = []
            async for name in self._redis.scan_iter(match=pattern, count=_SCAN_BATCH):
                batch.append(name)
                if len(batch) >= _SCAN_BATCH:
                    counts.update(await self._personas(batch))
                    batch = []
            if batch:
                counts.update(await self._personas(batch))
            return dict(counts)

        return await guarded("settings", run)

    async def _personas(self, names: list[bytes | str]) -> list[str]:
        """The persona field of each hash that has one."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(name, _PERSONA)
            values = await pipe.execute()
        return [p for p in map(_text, values) if p]
