"""One turn at a time per conversation, across processes: a leased Redis lock plus stop signals.

A stop asked in another replica sets the turn's stop key, then bumps one bot-wide counter; each
process polls that counter once per interval (not every turn's key) and fetches its turns' stop
keys, in one pipeline, only when it moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.lock import Lock
from redis.exceptions import LockError

from core.conversation import ConversationKey
from core.errors import StoreError
from core.retry import BLIP, RetryPolicy
from core.store.client import REDIS_FAILURES, RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import (
    NotReplicated,
    ReplicatedWrites,
    guarded,
    raise_if_cancelling,
    replicated_eval,
)

log = logging.getLogger(__name__)
# A Redis failure, or a write a failover could still undo: both worth retrying.
_FAILURES: tuple[type[Exception], ...] = (*REDIS_FAILURES, NotReplicated)


@dataclass(slots=True)
class TurnLease:
    """Held while a turn runs; ``stop`` is set when anyone, anywhere, asks to stop it."""

    key: ConversationKey
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""
    previous_lost: bool = False  # the conversation's previous turn never ended (its process died)
    # This grant's fencing token ("<grant number>:<lock token>"): the store saves the turn only
    # while it is still the conversation's newest grant. None: an unfenced lease (tests).
    fence: str | None = None

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
    for at most one lease; only the owner's token can release it (redis-py's Lock). One
    watcher task per process, alive while turns run here, sees stop requests from other
    replicas (``_watch``). On a
    Sentinel-managed Redis the grant, the running mark and the release are confirmed like a
    saved turn (``ReplicatedWrites``): written to a master a failover deposed, they would be
    lost and leave a held lease or a false "previous turn died" behind.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        keys: KeySpace | None = None,
        lease_seconds: float = 30.0,
        wait_seconds: float = 900.0,
        retry: RetryPolicy = BLIP,
    ) -> None:
        self._redis = redis
        self._writes = ReplicatedWrites.of(redis)
        self._retry = retry
        self._keys = keys or KeySpace()
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._local: dict[ConversationKey, asyncio.Lock] = {}
        self._users: dict[ConversationKey, int] = {}  # waiting or running here
        self._running: dict[ConversationKey, TurnLease] = {}
        # Marks this process wrote for a turn whose start then failed (the write may have landed,
        # e.g. on a replica during a failover): finding one later is not a lost turn.
        self._unconfirmed: dict[ConversationKey, str] = {}
        self._interval = min(1.0, lease_seconds / 3)  # lease renewal and stop-watch tick
        # The stop watcher and the event that ends it; None while no turn runs here.
        self._watcher: tuple[asyncio.Task[None], asyncio.Event] | None = None
        # Turns that began since the watcher's last look: their stop keys were never read.
        self._unchecked: set[ConversationKey] = set()

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
            # Bumped only once the request is there: a watcher that sees the counter move then
            # finds it. Two awaited commands, not one pipeline: a Cluster sends a pipeline's
            # commands for different nodes at once, in no order.
            await self._redis.incr(self._keys.stop_sequence())
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
                previous_lost = await self._begin(key, lock, token)
                lease = TurnLease(key, previous_lost=previous_lost, fence=lock.fence)
                self._running[key] = lease
                self._watch_turn(key)
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
                    watcher = self._unwatch_turn(key)
                    try:
                        await self._finish(key, lock, token)
                    finally:
                        if watcher is not None:  # it ended meanwhile or ends at its reply
                            await asyncio.wait((watcher,))
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                self._local.pop(key, None)

    async def _acquire(self, key: ConversationKey, *, wait: bool) -> _FencedLock:
        """Take the Redis lease with a random token and a new fencing token, in one script."""
        lock = _FencedLock(
            self._redis,
            self._keys.lock(key),
            fence_key=self._keys.fence(key),
            writes=self._writes,
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

    async def _begin(self, key: ConversationKey, lock: _FencedLock, token: str) -> bool:
        """Clear any stale stop request and mark the turn running; True if the last one died.

        A turn that ends in any way removes its mark, so a mark still there now was left by a
        process that was killed mid-turn.
        """
        running, stop = self._keys.running(key), self._keys.stop(key)

        async def mark() -> object:
            return await replicated_eval(
                self._redis, self._writes, _BEGIN, 2, running, stop, token, _RUNNING_MARK_SECONDS
            )

        try:
            previous = await guarded("lock", mark)
        except StoreError:
            self._unconfirmed[key] = token
            await self._release(lock)  # the turn will not run: free the conversation now
            raise
        ours = self._unconfirmed.pop(key, None)
        return previous is not None and _text(previous) != ours

    async def _finish(self, key: ConversationKey, lock: _FencedLock, token: str) -> None:
        """Remove this turn's running mark and give the lease back, each only if still its own
        (a later turn may have taken over), in one script.

        Retried through a Redis blip: a mark left behind would tell the next turn that this one
        died, and a lease left behind holds the conversation until it runs out.
        """
        lock_token = lock.local.token or b""

        async def finish() -> object:
            try:
                return await replicated_eval(
                    self._redis, self._writes, _FINISH, 2,
                    self._keys.running(key), lock.name, token, lock_token,
                )  # fmt: skip
            except REDIS_FAILURES as exc:
                raise_if_cancelling(exc)
                raise

        try:
            released = await self._retry.run(
                finish,
                retry_on=_FAILURES,
                what=f"ending the turn of {key}",
            )
        except _FAILURES as exc:
            log.warning("could not end the turn of %s (its lease runs out): %s", key, exc)
            return
        if not released:
            log.info("turn lease had already expired at release")

    async def _keep(self, lock: _FencedLock, lease: TurnLease, done: asyncio.Event) -> None:
        """Renew the lease until ``done`` (stop requests are the watcher's: ``_watch``)."""
        period = self._interval * max(1, int(self._lease / 3 / self._interval))
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await done.wait()
            if done.is_set():
                return
            try:
                await lock.extend(self._lease, replace_ttl=True)
            except LockError:
                if await self._take_back(lock, lease.fence):
                    log.warning("the turn lease for %s had expired; took it back", lease.key)
                    continue
                log.warning("another turn took the lease for %s; stopping this one", lease.key)
                lease.request_stop("lease lost")
                return
            except REDIS_FAILURES as exc:
                raise_if_cancelling(exc)
                log.warning("cannot renew the turn lease for %s: %s", lease.key, exc)

    def _watch_turn(self, key: ConversationKey) -> None:
        """Have the watcher read this turn's stop key at its next look; start it if none runs."""
        self._unchecked.add(key)
        if self._watcher is None or self._watcher[0].done():
            done = asyncio.Event()
            task = asyncio.create_task(self._watch(done), name=_WATCHER_NAME)
            self._watcher = (task, done)

    def _unwatch_turn(self, key: ConversationKey) -> asyncio.Task[None] | None:
        """Once the last turn here ended, tell the watcher to end; its task, to await."""
        self._unchecked.discard(key)
        if self._running or self._watcher is None:
            return None
        task, done = self._watcher
        self._watcher = None  # a turn starting meanwhile starts a watcher of its own
        done.set()  # an event, not cancel(): redis-py may swallow a cancellation mid-command
        return task

    async def _watch(self, done: asyncio.Event) -> None:
        """Every interval, GET the bot-wide stop counter; only when it moved since the last look
        (or at the first look, or after a failure) read every running turn's stop key, else only
        the keys of turns that began since. One command per tick however many turns run."""
        seen: object = _UNSEEN  # the counter at the last complete look
        failing = False  # warn once per streak of failures, not every tick
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await done.wait()
            if done.is_set():
                return
            # Taken before the GET: a turn that begins later is read at the next look.
            unchecked, self._unchecked = self._unchecked, set()
            try:
                counter = await self._redis.get(self._keys.stop_sequence())
                if counter != seen:
                    await self._collect_stops(list(self._running.values()))
                else:
                    await self._collect_stops(
                        [lease for k, lease in self._running.items() if k in unchecked]
                    )
                seen = counter
                if failing:
                    failing = False
                    log.info("watching for stop requests again")
            except REDIS_FAILURES as exc:
                raise_if_cancelling(exc)
                seen = _UNSEEN  # a request may have come meanwhile: read every key next time
                if not failing:
                    failing = True
                    log.warning("cannot watch for stop requests (retrying): %s", exc)
            except Exception:  # a defect: logged once; an escaped error would end the watch
                seen = _UNSEEN
                if not failing:
                    failing = True
                    log.exception("the stop watcher failed (retrying)")

    async def _collect_stops(self, leases: list[TurnLease]) -> None:
        """GETDEL these turns' stop keys in one non-transactional pipeline (their slots differ on
        a Cluster) and stop the turns that had a request; raise the first failed reply after."""
        if not leases:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                pipe.getdel(self._keys.stop(lease.key))
            replies = await pipe.execute(raise_on_error=False)
        failure: Exception | None = None
        for lease, reply in zip(leases, replies, strict=True):
            if isinstance(reply, Exception):
                failure = failure or reply
            elif reply is not None:
                lease.request_stop(_text(reply))
        if failure is not None:
            raise failure

    async def _take_back(self, lock: _FencedLock, fence: str | None) -> bool:
        """Re-take a lease that expired while Redis was slow, if no later grant was made since.

        Checked against the fencing token, not only the lock: another turn may have taken the
        lease and released it already, and this turn must not run on as if nothing happened.
        """
        token = lock.local.token
        if token is None or fence is None:
            return False
        try:
            taken = await self._redis.eval(
                _TAKE_BACK, 2, lock.name, lock.fence_key, token, int(self._lease * 1000), fence
            )
        except REDIS_FAILURES as exc:
            raise_if_cancelling(exc)
            return False
        return bool(taken)

    async def _release(self, lock: _FencedLock) -> None:
        """Give back a lease no turn ran under (once; it runs out by itself anyway)."""
        token = lock.local.token
        if token is None:
            return
        try:
            await replicated_eval(self._redis, self._writes, _RELEASE, 1, lock.name, token)
        except _FAILURES as exc:
            raise_if_cancelling(exc)
            log.warning("could not release a turn lease (it expires by itself): %s", exc)


class _FencedLock(Lock):
    """redis-py's Lock whose grant also issues the conversation's next fencing token.

    Taking the lock and moving the fence happen in one script (one round trip), so no other
    turn can be granted in between; the store compares the token in its save script.
    """

    def __init__(
        self,
        redis: RedisClient,
        name: str,
        *,
        fence_key: str,
        writes: ReplicatedWrites | None = None,
        **options: Any,
    ):
        super().__init__(redis, name, **options)
        self.fence_key = fence_key
        self.fence: str | None = None
        self._client = redis
        self._writes = writes

    async def do_acquire(self, token: str | bytes) -> bool:
        """SET NX PX plus the new fence; a retried grant whose reply was lost is recognised.

        A grant a failover could undo is withdrawn where it landed and raised as a blip, so the
        turn's start is retried against the master that survives.
        """
        lease_ms = int(self.timeout * 1000) if self.timeout else 0
        keys = (self.name, self.fence_key)
        try:
            fence = await replicated_eval(
                self._client, self._writes, _GRANT, 2, *keys, token, lease_ms, _FENCE_SECONDS,
                wrote=lambda reply: reply is not None,
            )  # fmt: skip
        except NotReplicated:
            with contextlib.suppress(*REDIS_FAILURES):
                await self._client.eval(_RELEASE, 1, self.name, token)
            raise
        if fence is None:
            return False
        self.fence = _text(fence)
        return True


# The stop watcher's task name (one per process while turns run).
_WATCHER_NAME = "stop watch"
# The watcher's counter before its first look: unlike any reply, None included.
_UNSEEN = object()

# A running mark outlives any turn by far; it only has to last until the user writes again.
_RUNNING_MARK_SECONDS = 7 * 24 * 3600
# The fence lives as long: a turn outliving it (and then meeting a reused number) is impossible,
# and the lock token in the fence makes two grants' tokens differ even then.
_FENCE_SECONDS = _RUNNING_MARK_SECONDS

# KEYS: lock, fence. ARGV: lock token, lease ms (0 = none), fence ttl. Returns the new fencing
# token "<grant number>:<lock token>", or nil while another turn holds the lock.
_GRANT = """
local taken
if tonumber(ARGV[2]) > 0 then
  taken = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
else
  taken = redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
if taken then
  local previous = redis.call('GET', KEYS[2])
  local number = tonumber(previous and string.match(previous, '^%d+') or '0') + 1
  local fence = string.format('%d:%s', number, ARGV[1])
  redis.call('SET', KEYS[2], fence, 'EX', ARGV[3])
  return fence
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('GET', KEYS[2])
end
return false
"""

# KEYS: lock, fence. ARGV: lock token, lease ms, this turn's fence. Re-takes an expired lock only
# while no later grant moved the fence.
_TAKE_BACK = """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then
  return 0
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""

# KEYS: running mark, stop request. ARGV: this turn's mark, its ttl. The previous mark or nil.
_BEGIN = """
redis.call('DEL', KEYS[2])
return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2], 'GET')
"""

# KEYS: running mark, lock. ARGV: this turn's mark, its lock token. 1 if the lease was released.
_FINISH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  return redis.call('DEL', KEYS[2])
end
return 0
"""

# KEYS: lock. ARGV: lock token. Deletes the lock only if it is still this grant's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _text(value: object) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["StoreError", "TurnBusy", "TurnCoordinator", "TurnLease"]
