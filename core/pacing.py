"""Send/edit budgets: per chat in-process, and shared across replicas through Redis."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from core.clock import Clock, LoopClock
from core.store.client import REDIS_FAILURES

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from core.sink import Pacer


# The shortest sleep: asyncio runs timers due within its clock resolution at once, so a top-up
# of a few ulps would return without time moving and spin forever on a coarse (or virtual) clock.
_MIN_SLEEP = 1e-6


async def _sleep_until(clock: Clock, moment: float) -> None:
    """Sleep until ``moment``; event loops may wake a little early, so check and top up."""
    while (now := clock.now()) < moment:
        await clock.sleep(max(moment - now, _MIN_SLEEP))


class IntervalPacer:
    """At most one write per ``min_interval`` seconds; waiters are served in arrival order."""

    def __init__(self, min_interval: float, clock: Clock | None = None) -> None:
        self._interval = min_interval
        self._clock = clock or LoopClock()
        self._next_slot = float("-inf")
        self._blocked_until = float("-inf")
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Reserve the next slot and wait for it; reserve again if a 429 came meanwhile."""
        while True:
            async with self._lock:
                now = self._clock.now()
                slot = max(now, self._next_slot)
                self._next_slot = slot + self._interval
            await _sleep_until(self._clock, slot)
            if self._clock.now() >= self._blocked_until:
                return

    def penalize(self, retry_after: float) -> None:
        """Nobody writes until the platform's retry_after has passed, not even earlier waiters."""
        until = self._clock.now() + retry_after
        self._blocked_until = max(self._blocked_until, until)
        self._next_slot = max(self._next_slot, until)


class TokenBucketPacer:
    """``rate`` writes per second on average with bursts up to ``burst`` (e.g. 20/min in groups)."""

    def __init__(self, rate: float, burst: int, clock: Clock | None = None) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock or LoopClock()
        self._tokens = float(burst)
        self._updated = self._clock.now()
        self._blocked_until = float("-inf")
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take one token, waiting for it to refill if needed."""
        async with self._lock:
            while True:
                now = self._clock.now()
                if now < self._blocked_until:
                    await _sleep_until(self._clock, self._blocked_until)
                    continue
                self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
                self._updated = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await self._clock.sleep(max((1.0 - self._tokens) / self._rate, _MIN_SLEEP))

    def penalize(self, retry_after: float) -> None:
        """Block the bucket until the platform's retry_after has passed; it is empty as of now."""
        now = self._clock.now()
        self._blocked_until = max(self._blocked_until, now + retry_after)
        self._tokens = 0.0
        self._updated = now  # time before the 429 must not refill the bucket afterwards


class CompositePacer:
    """All budgets must allow a write (e.g. 1/s per chat and 20/min per group)."""

    def __init__(self, *pacers: Pacer) -> None:
        self._pacers = pacers

    async def acquire(self) -> None:
        """Acquire each budget in turn."""
        for pacer in self._pacers:
            await pacer.acquire()

    def penalize(self, retry_after: float) -> None:
        """A 429 applies to every budget we share."""
        for pacer in self._pacers:
            pacer.penalize(retry_after)


class RedisWindowPacer:
    """At most ``limit`` writes in any ``window`` seconds, counted when each write leaves.

    Slots handed out ahead keep writers in line, but when a process stalls every
    slot that fell due during the stall fires at once, and a platform counting a sliding
    window (Telegram's ~30 messages per second per bot) answers 429. Taken right before the
    request, this log of send times caps any window, whatever the stalls.
    """

    def __init__(
        self,
        redis: _AsyncRedis,
        key: str,
        limit: int,
        window: float,
        clock: Clock | None = None,
    ) -> None:
        self._redis = redis
        self._key = key
        self._limit = limit
        self._window_ms = max(1, round(window * 1000))
        self._clock = clock or LoopClock()
        self._local = IntervalPacer(window / limit, self._clock)  # when Redis blinks
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count()

    async def acquire(self) -> None:
        """Log this write in the window, waiting while the window is full."""
        while True:
            member = f"{self._prefix}:{next(self._counter)}"
            try:
                raw = await self._redis.eval(
                    _ADMIT, 1, self._key, str(self._window_ms), str(self._limit), member
                )
            except REDIS_FAILURES as exc:
                log.warning("shared pacing unavailable (%s); pacing locally", type(exc).__name__)
                await self._local.acquire()
                return
            wait_ms = int(raw.decode() if isinstance(raw, bytes) else str(raw))
            if wait_ms <= 0:
                return
            # Spread the writers the window turned away over one slot, so they do not all
            # come back at the same millisecond.
            spread = random.random() * self._window_ms / self._limit
            await self._clock.sleep((wait_ms + spread) / 1000)

    def penalize(self, retry_after: float) -> None:
        """A 429 is about a chat; the window already counts what was sent."""


class _AsyncRedis(Protocol):
    """The slice of redis.asyncio.Redis the shared pacer uses (keeps the core SDK-free)."""

    def eval(self, script: str, numkeys: int, *keys_and_args: str) -> Awaitable[object]: ...


# Admit a write if fewer than ARGV[2] were logged in the last ARGV[1] ms, else say how many ms
# until the oldest leaves the window.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""


@dataclass(frozen=True, slots=True)
class Spacing:
    """At most one write per ``interval`` seconds on ``key``."""

    key: str
    interval: float


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``limit`` writes in any ``seconds``, counted when each write leaves."""

    key: str
    limit: int
    seconds: float


# Take every budget of one write at once (times in ms of Redis server time).
# KEYS: the spaced keys (ARGV[1] of them), the queue key if ARGV[2] == '1', the window key if
# ARGV[3] ~= '0'. ARGV: n spaced, has queue, window limit (0: none), window ms, window member,
# queue interval ms, then each spaced key's interval ms.
# Returns {0, ms}: a spaced key is not free for ms, nothing was taken; {1, ms}: the slots are
# taken, the write goes in ms after the window (if any) admits it; {2, 0}: admitted now.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = tonumber(ARGV[1])
local wait = 0
for i = 1, n do
  local nxt = tonumber(redis.call('GET', KEYS[i]) or '0')
  if nxt - now > wait then wait = nxt - now end
end
if wait > 0 then return {0, tostring(wait)} end
local k = n
local slot = now
if ARGV[2] == '1' then
  k = k + 1
  local queued = tonumber(redis.call('GET', KEYS[k]) or '0')
  if queued > slot then slot = queued end
  local qi = tonumber(ARGV[6])
  redis.call('SET', KEYS[k], tostring(slot + qi), 'PX', math.ceil(slot - now + qi) + 1000)
end
for i = 1, n do
  local iv = tonumber(ARGV[6 + i])
  redis.call('SET', KEYS[i], tostring(slot + iv), 'PX', math.ceil(slot - now + iv) + 1000)
end
if slot > now then return {1, tostring(slot - now)} end
if ARGV[3] == '0' then return {2, '0'} end
k = k + 1
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[k], '-inf', now - window)
if redis.call('ZCARD', KEYS[k]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[k], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[k], window)
  return {2, '0'}
end
local oldest = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
return {1, tostring(math.max(1, tonumber(oldest[2]) + window - now))}
"""

_PUSH_BACK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local until_ = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], tostring(until_), 'PX', math.ceil(until_ - now) + 1000)
return 1
"""

_NOT_FREE, _TAKEN, _ADMITTED = 0, 1, 2


class RedisBudgetPacer:
    """Every budget of one write, shared by all replicas, taken in one Redis round trip.

    ``spaced`` budgets (a chat's one write per second) must be free now: a write never holds
    them ahead of time, and the pacer remembers when they will be free again, so a reply that
    writes once per slot asks Redis once per write. ``queue`` (the bot's 30 per second) hands
    out slots in arrival order; ``window`` counts writes when they leave, so slots that fell due
    during a stall never fire all at once. All keys must share one hash tag (Redis Cluster).
    A write that waited for its queue slot or a full window asks the window again when it
    leaves: a second round trip, only then.
    """

    def __init__(
        self,
        redis: _AsyncRedis,
        spaced: Sequence[Spacing],
        *,
        queue: Spacing | None = None,
        window: Window | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._redis = redis
        self._spaced = tuple(spaced)
        # What a 429 pushes back: the first spaced budget (a chat), else the queue.
        self._blamed = self._spaced[0].key if self._spaced else queue.key if queue else None
        self._clock = clock or LoopClock()
        self._window = (
            RedisWindowPacer(redis, window.key, window.limit, window.seconds, self._clock)
            if window
            else None
        )
        self._spacing = max((s.interval for s in self._spaced), default=0.0)
        # Redis down: each reply keeps to the longest interval it would have waited for.
        self._fallback = max(self._spacing, queue.interval if queue else 0.0)
        self._free_at = float("-inf")  # when the spaced budgets are free again, as last seen
        keys = [s.key for s in self._spaced]
        if queue is not None:
            keys.append(queue.key)
        if window is not None:
            keys.append(window.key)
        self._keys = tuple(keys)
        self._head = (
            str(len(self._spaced)),
            "1" if queue else "0",
            str(window.limit if window else 0),
            str(round(window.seconds * 1000) if window else 0),
        )
        self._tail = (
            _ms(queue.interval if queue else 0.0),
            *(_ms(s.interval) for s in self._spaced),
        )
        self._member = f"{secrets.token_hex(6)}:"
        self._counter = itertools.count()
        self._pending: set[asyncio.Task[object]] = set()

    async def acquire(self) -> None:
        """Wait until every budget allows one more write, and take it."""
        await _sleep_until(self._clock, self._free_at)
        while True:
            try:
                status, wait = await self._take()
            except REDIS_FAILURES as exc:
                log.warning("shared pacing unavailable (%s); pacing locally", type(exc).__name__)
                await self._local()
                return
            seconds = wait / 1000
            if status == _NOT_FREE:
                self._free_at = self._clock.now() + seconds
                await _sleep_until(self._clock, self._free_at)
                continue
            self._free_at = self._clock.now() + seconds + self._spacing
            if status == _ADMITTED:
                return
            await self._clock.sleep(seconds)
            if self._window is not None:
                await self._window.acquire()
            return

    async def _take(self) -> tuple[int, float]:
        """One round trip: the script's verdict and the milliseconds to wait."""
        member = f"{self._member}{next(self._counter)}"
        raw = await self._redis.eval(
            _TAKE, len(self._keys), *self._keys, *self._head, member, *self._tail
        )
        status, wait = cast("list[bytes | str | int]", raw)
        return int(status), float(wait.decode() if isinstance(wait, bytes) else wait)

    async def _local(self) -> None:
        """Redis failed: pace this reply by itself rather than break it."""
        self._free_at = self._clock.now() + self._fallback
        await self._clock.sleep(self._fallback)

    def penalize(self, retry_after: float) -> None:
        """The platform answered 429 about the first spaced budget (else the queue): push it
        back on every replica."""
        self._free_at = max(self._free_at, self._clock.now() + retry_after)
        if self._blamed is None:
            return
        task: asyncio.Task[object] = asyncio.ensure_future(
            self._redis.eval(_PUSH_BACK, 1, self._blamed, _ms(retry_after))
        )
        self._pending.add(task)
        task.add_done_callback(self._settle)

    def _settle(self, task: asyncio.Task[object]) -> None:
        """A failed push-back only costs pacing accuracy; never leave an unretrieved exception."""
        self._pending.discard(task)
        if not task.cancelled():
            task.exception()


def _ms(seconds: float) -> str:
    """Seconds as the scripts' milliseconds."""
    return repr(seconds * 1000)


class SharedSlot:
    """One budget in Redis, handed out in arrival order: a pacer by itself, or one part of a
    ``RedisBudgetPacer`` that takes it with the write's other budgets in one round trip."""

    def __init__(
        self, redis: _AsyncRedis, key: str, interval: float, clock: Clock | None = None
    ) -> None:
        self.redis = redis
        self.spacing = Spacing(key, interval)
        self.clock = clock
        self._alone = RedisBudgetPacer(redis, (), queue=self.spacing, clock=clock)

    async def acquire(self) -> None:
        """Take the next slot and wait for it."""
        await self._alone.acquire()

    def penalize(self, retry_after: float) -> None:
        """Push the next slot past the platform's retry_after, for every replica."""
        self._alone.penalize(retry_after)
