"""One turn at a time per conversation, across processes: a leased Redis lock plus stop signals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.exceptions import LockError, RedisError

from core.conversation import ConversationKey
from core.errors import StoreError
from core.retry import BLIP, RetryPolicy
from core.store.keys import KeySpace
from core.store.redis_store import guarded, raise_if_cancelling

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TurnLease:
    """Held while a turn runs; ``stop`` is set when anyone, anywhere, asks to stop it."""

    key: ConversationKey
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""
    previous_lost: bool = False  # the conversation's previous turn never ended (its process died)

    def request_stop(self, reason: str) -> None:
        """Ask the running turn to end (it keeps what was already shown)."""
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()


class TurnBusy(Exception):
    """The conversation is answering another message and the caller would not wait."""


class TurnCoordinator:
    """Serialises turns: FIFO inside a process, a leased Redis lock across processes.

    The lease is renewed while the turn runs, so a crashed replica blocks the conversation
    for at most one lease; only the owner's token can release it (redis-py's Lock).
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        keys: KeySpace | None = None,
        lease_seconds: float = 30.0,
        wait_seconds: float = 900.0,
        retry: RetryPolicy = BLIP,
    ) -> None:
        self._redis = redis
        self._retry = retry
        self._keys = keys or KeySpace()
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._local: dict[ConversationKey, asyncio.Lock] = {}
        self._users: dict[ConversationKey, int] = {}  # waiting or running here
        self._running: dict[ConversationKey, TurnLease] = {}

    def running(self, key: ConversationKey) -> TurnLease | None:
        """The lease of a turn this process is running for ``key``."""
        return self._running.get(key)

    def leases(self) -> list[TurnLease]:
        """Every turn this process is running (for graceful shutdown)."""
        return list(self._running.values())

    async def busy(self, key: ConversationKey) -> bool:
        """Whether any process is answering in this conversation right now."""
        if key in self._users:
            return True
        return bool(await guarded("lock check", lambda: self._redis.exists(self._keys.lock(key))))

    async def signal_stop(self, key: ConversationKey, reason: str = "stopped") -> bool:
        """Stop the running turn here at once, and in other replicas through Redis."""
        lease = self._running.get(key)
        if lease is not None:
            lease.request_stop(reason)
            return True

        async def remote() -> bool:
            if not await self._redis.exists(self._keys.lock(key)):
                return False
            await self._redis.set(self._keys.stop(key), reason, ex=max(5, int(self._lease)))
            return True

        return await guarded("stop", remote)

    @contextlib.asynccontextmanager
    async def turn(self, key: ConversationKey, *, wait: bool = True) -> AsyncIterator[TurnLease]:
        """Hold the conversation for one turn; TurnBusy if held and ``wait`` is False."""
        local = self._local.setdefault(key, asyncio.Lock())
        if not wait and local.locked():
            raise TurnBusy(str(key))
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with local:
                lock = await self._acquire(key, wait=wait)
                token = secrets.token_hex(8)
                lease = TurnLease(key, previous_lost=await self._begin(key, lock, token))
                self._running[key] = lease
                done = asyncio.Event()
                keeper = asyncio.create_task(self._keep(lock, lease, done), name=f"lease {key}")
                try:
                    yield lease
                finally:
                    # An event, not cancel(): redis-py may swallow a cancellation mid-command.
                    done.set()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeper
                    self._running.pop(key, None)
                    await self._end(key, token)
                    await self._release(lock)
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                self._local.pop(key, None)

    async def _acquire(self, key: ConversationKey, *, wait: bool) -> Lock:
        """Take the Redis lease with a random token; clear any stale stop request."""
        lock = Lock(
            self._redis,
            self._keys.lock(key),
            timeout=self._lease,
            sleep=0.05,
            blocking=wait,
            blocking_timeout=self._wait if wait else None,
            thread_local=False,
        )
        token = secrets.token_hex(16)
        acquired = await guarded("lock", lambda: lock.acquire(token=token))
        if not acquired:
            raise TurnBusy(str(key))
        return lock

    async def _begin(self, key: ConversationKey, lock: Lock, token: str) -> bool:
        """Clear any stale stop request and mark the turn running; True if the last one died.

        A turn that ends in any way removes its mark, so a mark still there now was left by a
        process that was killed mid-turn.
        """

        async def mark() -> object:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._keys.stop(key))
                pipe.set(self._keys.running(key), token, ex=_RUNNING_MARK_SECONDS, get=True)
                _, previous = await pipe.execute()
            return previous

        try:
            return await guarded("lock", mark) is not None
        except StoreError:
            await self._release(lock)  # the turn will not run: free the conversation now
            raise

    async def _end(self, key: ConversationKey, token: str) -> None:
        """Remove this turn's running mark (only its own: a later turn may have taken over).

        Retried through a Redis blip: a mark left behind would tell the next turn that this
        one died.
        """

        async def clear() -> None:
            try:
                await self._redis.eval(_END_RUNNING, 1, self._keys.running(key), token)
            except (RedisError, OSError) as exc:
                raise_if_cancelling(exc)
                raise

        try:
            await self._retry.run(
                clear, retry_on=(RedisError, OSError), what=f"clearing the running mark of {key}"
            )
        except (RedisError, OSError) as exc:
            log.warning("could not clear the running mark of %s: %s", key, exc)

    async def _keep(self, lock: Lock, lease: TurnLease, done: asyncio.Event) -> None:
        """Renew the lease and watch for stop requests from other replicas until ``done``."""
        interval = min(1.0, self._lease / 3)
        stop_key = self._keys.stop(lease.key)
        renew_every = max(1, int(self._lease / 3 / interval))
        ticks = 0
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await done.wait()
            if done.is_set():
                return
            ticks += 1
            try:
                reason = await self._redis.getdel(stop_key)
                if reason is not None:
                    lease.request_stop(_text(reason))
                if ticks % renew_every == 0:
                    await lock.extend(self._lease, replace_ttl=True)
            except LockError:
                if await self._take_back(lock):
                    log.warning("the turn lease for %s had expired; took it back", lease.key)
                    continue
                log.warning("another turn took the lease for %s; stopping this one", lease.key)
                lease.request_stop("lease lost")
                return
            except (RedisError, OSError) as exc:
                raise_if_cancelling(exc)
                log.warning("cannot renew the turn lease for %s: %s", lease.key, exc)

    async def _take_back(self, lock: Lock) -> bool:
        """Re-take a lease that expired while Redis was slow, if no other turn has taken it."""
        token = lock.local.token
        if token is None:
            return False
        try:
            taken = await self._redis.set(lock.name, token, nx=True, px=int(self._lease * 1000))
        except (RedisError, OSError) as exc:
            raise_if_cancelling(exc)
            return False
        return bool(taken)

    async def _release(self, lock: Lock) -> None:
        """Give the lease back; if it already expired there is nothing to release."""
        try:
            await lock.release()
        except LockError:
            log.info("turn lease had already expired at release")
        except (RedisError, OSError) as exc:
            log.warning("could not release a turn lease (it expires by itself): %s", exc)


# A running mark outlives any turn by far; it only has to last until the user writes again.
_RUNNING_MARK_SECONDS = 7 * 24 * 3600

_END_RUNNING = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _text(value: object) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["StoreError", "TurnBusy", "TurnCoordinator", "TurnLease"]
