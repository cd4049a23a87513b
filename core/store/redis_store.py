"""Conversation memory in Redis (or anything speaking its protocol, embedded or remote)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.conversation import ConversationKey, StoredMessage, StoreStats, Turn
from core.errors import StoreError
from core.store.codec import decode_all, encode
from core.store.keys import KeySpace

log = logging.getLogger(__name__)
T = TypeVar("T")
_SCAN_BATCH = 500
# How long a turn stays marked as saved: far longer than any retry of its save.
_SAVED_MARK_SECONDS = 600

# KEYS: history, saved-mark. ARGV: replace (0/1), cap, ttl (0 = none), mark ttl, the messages.
_SAVE = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
  return 0
end
if ARGV[1] == '1' then
  redis.call('LTRIM', KEYS[1], 0, -3)
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 5))
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
end
return 1
"""


def raise_if_cancelling(exc: BaseException) -> None:
    """redis-py can turn a cancellation into a TimeoutError; never let that swallow a cancel."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from exc


async def guarded(operation: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis call, translating its failures into StoreError once, here."""
    try:
        return await call()
    except (RedisError, OSError) as exc:
        raise_if_cancelling(exc)
        raise StoreError(f"Redis failed during {operation}: {exc}") from exc


class RedisConversationStore:
    """History as a Redis list per conversation: append, cap and TTL in one script."""

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        keys: KeySpace | None = None,
        max_messages: int = 200,
        ttl_seconds: int = 0,
    ) -> None:
        self._redis = redis
        self._keys = keys or KeySpace()
        self._cap = max(2, max_messages - max_messages % 2)  # whole turns only
        self._ttl = ttl_seconds

    async def load(self, key: ConversationKey) -> list[StoredMessage]:
        """All messages, oldest first."""
        raws = await guarded("load", lambda: self._redis.lrange(self._keys.history(key), 0, -1))
        return decode_all(raws)

    async def append(self, key: ConversationKey, turn: Turn) -> None:
        """RPUSH both halves, LTRIM to the cap and renew the TTL, atomically and only once."""
        await guarded("append", lambda: self._save(key, turn, replace=False))

    async def replace_last(self, key: ConversationKey, turn: Turn) -> None:
        """Drop the newest turn and push the new one in the same script, only once."""
        await guarded("replace_last", lambda: self._save(key, turn, replace=True))

    async def _save(self, key: ConversationKey, turn: Turn, *, replace: bool) -> None:
        """One script: a turn already marked as saved is not pushed again."""
        await self._redis.eval(
            _SAVE,
            2,
            self._keys.history(key),
            self._keys.saved(key, turn.id),
            "1" if replace else "0",
            str(self._cap),
            str(self._ttl),
            str(_SAVED_MARK_SECONDS),
            *(encode(m) for m in turn.messages()),
        )

    async def clear(self, key: ConversationKey) -> bool:
        """Delete one conversation's history."""
        removed = await guarded("clear", lambda: self._redis.unlink(self._keys.history(key)))
        return bool(removed)

    async def clear_user(self, platform: str, user: str) -> int:
        """Delete every history of a user on a platform (SCAN, never KEYS)."""
        return await self._clear_matching(self._keys.history_pattern(platform=platform, user=user))

    async def clear_chat(self, platform: str, chat: str) -> int:
        """Delete every history in a chat."""
        return await self._clear_matching(self._keys.history_pattern(platform=platform, chat=chat))

    async def clear_all(self) -> int:
        """Delete every history under our prefix."""
        return await self._clear_matching(self._keys.history_pattern())

    async def stats(self) -> StoreStats:
        """Conversation and message counts per platform."""

        async def run() -> StoreStats:
            conversations: Counter[str] = Counter()
            messages = 0
            async for batch in self._scan(self._keys.history_pattern()):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for name in batch:
                        pipe.llen(name)
                    lengths = await pipe.execute()
                for name, length in zip(batch, lengths, strict=True):
                    if length:
                        conversations[self._keys.platform_of(name)] += 1
                        messages += int(length)
            return StoreStats(
                conversations=sum(conversations.values()),
                messages=messages,
                by_platform=dict(conversations),
            )

        return await guarded("stats", run)

    async def _clear_matching(self, pattern: str) -> int:
        """UNLINK every key matching ``pattern``, one batch per round trip."""

        async def run() -> int:
            removed = 0
            async for batch in self._scan(pattern):
                removed += int(await self._redis.unlink(*batch))
            return removed

        return await guarded("clear", run)

    async def _scan(self, pattern: str) -> AsyncIterator[list[str]]:
        """Matching key names in batches."""
        batch: list[str] = []
        async for raw in self._redis.scan_iter(match=pattern, count=_SCAN_BATCH):
            batch.append(raw.decode() if isinstance(raw, bytes) else str(raw))
            if len(batch) >= _SCAN_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch
