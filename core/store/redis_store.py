"""Conversation memory in Redis (or anything speaking its protocol, embedded or remote).

A save is fenced: the script stores the turn only while it still holds the conversation's lease
(``core.turns``). On a Sentinel-managed Redis a save also counts only once it would survive a
failover (see ``ReplicatedWrites``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.typing import EncodableT

from core.conversation import ConversationKey, StoredMessage, StoreStats, Turn
from core.errors import LeaseLost, StoreError
from core.store.client import REDIS_FAILURES, RedisClient
from core.store.codec import decode_all, encode
from core.store.keys import KeySpace

log = logging.getLogger(__name__)
T = TypeVar("T")
_SCAN_BATCH = 500
# How long a turn stays marked as saved: far longer than any retry of its save.
_SAVED_MARK_SECONDS = 600

# KEYS: history, saved-mark, fence. ARGV: replace (0/1), cap, ttl (0 = none), mark ttl, the
# turn's fencing token ('' = unfenced), the messages. Returns 1 stored, 0 stored before (the
# mark is renewed: a write, so a WAIT after it also covers the first save), -1 lease lost.
_SAVE = """
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  return 0
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[5] then
  redis.call('DEL', KEYS[2])
  return -1
end
if ARGV[1] == '1' then
  redis.call('LTRIM', KEYS[1], 0, -3)
end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 6))
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
    except REDIS_FAILURES as exc:
        raise_if_cancelling(exc)
        raise StoreError(f"Redis failed during {operation}: {exc}") from exc


class NotReplicated(StoreError):
    """A write reached a master but cannot be shown to survive a failover yet; a blip."""


def _always(_: list[Any]) -> bool:
    """Every reply counts as a write to confirm."""
    return True


class ReplicatedWrites:
    """Makes a write on a Sentinel-managed Redis count only once a failover cannot undo it.

    Sentinel replicates asynchronously and, after ``SENTINEL FAILOVER``, leaves the old master
    writable for about ten seconds until it reconfigures it: what is written there is lost (a
    saved turn, a released lease, a cleared running mark). So the write's own connection asks
    ``WAIT 1`` (a replica has it) and for the server's replicas. Without a replica's ack the
    write stands only if no healthy replica is attached and every sentinel that answers (a
    majority) names the very address it was written to, with no failover under way; else a
    ``NotReplicated`` blip, and the retry (every write sent this way is idempotent) lands on the
    new master.
    """

    @classmethod
    def of(cls, redis: RedisClient) -> ReplicatedWrites | None:
        """For a Sentinel-managed client; None for any other (nothing to confirm)."""
        if not isinstance(redis, aioredis.Redis):
            return None  # a Cluster: its primaries fail over on their own
        pool = redis.connection_pool
        return cls(redis, pool) if isinstance(pool, SentinelConnectionPool) else None

    def __init__(self, redis: aioredis.Redis, pool: SentinelConnectionPool) -> None:
        self._redis = redis
        self._pool = pool
        timeout = pool.connection_kwargs.get("socket_timeout") or 1.0
        # WAIT blocks the connection: keep it well inside the socket timeout.
        self._wait_ms = max(10, int(min(_REPLICA_WAIT_SECONDS, float(timeout) / 4) * 1000))
        self._alone = False  # the master had no replica at the last write: no WAIT to sit out

    async def run(
        self, write: Callable[[Pipeline], object], *, wrote: Callable[[list[Any]], bool] = _always
    ) -> list[Any]:
        """The commands ``write`` queues, sent with the checks on one connection; their replies
        once confirmed (at once when ``wrote(replies)`` says nothing was written)."""
        alone = self._alone
        async with self._redis.pipeline(transaction=False) as pipe:
            # Handed to the pipeline (which releases it), so we know which server it reached:
            # the address redis-py connected to, as the sentinels named it then.
            connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
            pipe.connection = connection
            write(pipe)
            count = len(pipe)
            if not alone:
                pipe.wait(1, self._wait_ms)
            pipe.info("replication")
            replies = await pipe.execute()
            address = (connection.host, connection.port)
        results, checks = replies[:count], replies[count:]
        if not wrote(results):
            return results
        acked = 0 if alone else int(checks.pop(0))
        (replication,) = checks
        if acked >= 1:
            self._alone = False
            return results
        if _healthy_replicas(replication):
            self._alone = False
            raise NotReplicated("no replica confirmed the write yet")
        if not await self._named_master(address):
            raise NotReplicated("the write reached a Redis the sentinels do not name master")
        self._alone = True
        return results

    async def _named_master(self, address: tuple[str, int]) -> bool:
        """Whether the sentinels agree ``address`` is the master (see ``master_confirmed``)."""
        manager = self._pool.sentinel_manager
        sentinels = list(manager.sentinels)
        answers = await asyncio.gather(
            *(s.sentinel_master(self._pool.service_name) for s in sentinels),
            return_exceptions=True,
        )
        states = [a for a in answers if isinstance(a, Mapping)]
        if any(_named(state) != address for state in states):
            # Some sentinel names another master (this one may be deposed): drop the idle
            # connections, so the retry asks the sentinels afresh which server to write to.
            await self._pool.disconnect(inuse_connections=False)
        return master_confirmed(states, address, len(sentinels))


async def replicated_eval(
    redis: RedisClient,
    writes: ReplicatedWrites | None,
    script: str,
    numkeys: int,
    *args: EncodableT,
    wrote: Callable[[Any], bool] = lambda _: True,
) -> Any:
    """EVAL ``script``; on a Sentinel-managed Redis confirmed by ``writes`` (unless ``wrote``
    says its reply means nothing was written)."""
    if writes is None:
        return await redis.eval(script, numkeys, *args)
    (reply,) = await writes.run(
        lambda pipe: pipe.eval(script, numkeys, *args), wrote=lambda replies: wrote(replies[0])
    )
    return reply


def master_confirmed(
    states: list[Mapping[str, Any]], address: tuple[str, int], sentinels: int
) -> bool:
    """Whether a write on ``address`` that no replica acked may stand: a majority of all
    ``sentinels`` answered, every answer names ``address``, none is failing over.

    A majority alone is not enough: the sentinel that led a failover names the new master
    about two seconds before the others hear of it, and a write the deposed master takes in
    that window is lost when it is demoted.
    """
    if any(_named(state) != address for state in states):
        return False
    if any("failover_in_progress" in _flags(state) for state in states):
        return False
    return len(states) * 2 > sentinels


def _named(state: Mapping[str, Any]) -> tuple[str, int]:
    """The master address a sentinel's state names."""
    return (str(state.get("ip")), int(state.get("port") or 0))


def _flags(state: Mapping[str, Any]) -> set[str]:
    """A sentinel state's flags (a comma list in RESP2, a set in RESP3)."""
    flags = state.get("flags", "")
    return set(flags) if isinstance(flags, set | frozenset) else set(str(flags).split(","))


def _healthy_replicas(replication: Mapping[str, Any]) -> int:
    """Replicas attached to this master, online and acking within the last couple of seconds."""
    count = 0
    for name, value in replication.items():
        if name.startswith("slave") and isinstance(value, Mapping):
            lag = value.get("lag", 0)
            if value.get("state") == "online" and int(lag) <= _REPLICA_LAG_SECONDS:
                count += 1
    return count


# How long a save waits for a replica's ack (at most a quarter of the socket timeout).
_REPLICA_WAIT_SECONDS = 0.25
# A replica acks every second; one silent for longer is not counted on.
_REPLICA_LAG_SECONDS = 2


class RedisConversationStore:
    """History as a Redis list per conversation: append, cap and TTL in one script."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        keys: KeySpace | None = None,
        max_messages: int = 200,
        ttl_seconds: int = 0,
    ) -> None:
        self._redis = redis
        self._keys = keys or KeySpace()
        self._cap = max(2, max_messages - max_messages % 2)  # whole turns only
        self._ttl = ttl_seconds
        self._replicated = ReplicatedWrites.of(redis)

    async def load(self, key: ConversationKey) -> list[StoredMessage]:
        """All messages, oldest first."""
        raws = await guarded("load", lambda: self._redis.lrange(self._keys.history(key), 0, -1))
        return decode_all(raws)

    async def append(self, key: ConversationKey, turn: Turn, *, fence: str | None = None) -> None:
        """RPUSH both halves, LTRIM to the cap and renew the TTL, atomically and only once."""
        await self._save(key, turn, replace=False, fence=fence)

    async def replace_last(
        self, key: ConversationKey, turn: Turn, *, fence: str | None = None
    ) -> None:
        """Drop the newest turn and push the new one in the same script, only once."""
        await self._save(key, turn, replace=True, fence=fence)

    async def _save(
        self, key: ConversationKey, turn: Turn, *, replace: bool, fence: str | None
    ) -> None:
        """One script: a turn already marked as saved is not pushed again; a fenced-out one
        is refused (LeaseLost)."""
        args = (
            self._keys.history(key),
            self._keys.saved(key, turn.id),
            self._keys.fence(key),
            "1" if replace else "0",
            str(self._cap),
            str(self._ttl),
            str(_SAVED_MARK_SECONDS),
            fence or "",
            *(encode(m) for m in turn.messages()),
        )
        result = await guarded(
            "replace_last" if replace else "append",
            lambda: replicated_eval(self._redis, self._replicated, _SAVE, 3, *args),
        )
        if int(result) < 0:
            raise LeaseLost(f"the turn lease of {key} passed to another turn; not saved")

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
