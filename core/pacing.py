"""Send/edit budgets: per chat in-process, and shared across replicas through Redis."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import secrets
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

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

    Slots reserved ahead (RedisPacer) keep writers in line, but when a process stalls every
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


# Reserve the next slot atomically: slot = max(now, stored); store slot + interval.
_RESERVE = """
local now = tonumber(redis.call('TIME')[1]) + tonumber(redis.call('TIME')[2]) / 1e6
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(now, nxt)
local ttl = math.ceil(slot - now + tonumber(ARGV[1]) + 1)
redis.call('SET', KEYS[1], tostring(slot + tonumber(ARGV[1])), 'EX', ttl)
return tostring(slot - now)
"""

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

_PENALIZE = """
local now = tonumber(redis.call('TIME')[1]) + tonumber(redis.call('TIME')[2]) / 1e6
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ = math.max(nxt, now + tonumber(ARGV[1]))
redis.call('SET', KEYS[1], tostring(until_), 'EX', math.ceil(until_ - now + 1))
return 1
"""


class RedisPacer:
    """One write per ``interval`` on ``key`` for all replicas; Redis server time is the clock."""

    def __init__(self, redis: _AsyncRedis, key: str, interval: float, clock: Clock | None = None):
        self._redis = redis
        self._key = key
        self._interval = interval
        self._clock = clock or LoopClock()
        self._pending: set[asyncio.Task[object]] = set()

    async def acquire(self) -> None:
        """Reserve the next shared slot and wait for it."""
        try:
            raw = await self._redis.eval(_RESERVE, 1, self._key, str(self._interval))
        except REDIS_FAILURES as exc:
            # Degrade to local pacing: a Redis blip must not break a reply being written.
            log.warning("shared pacing unavailable (%s); pacing locally", type(exc).__name__)
            await self._clock.sleep(self._interval)
            return
        wait = float(raw.decode() if isinstance(raw, bytes) else str(raw))
        if wait > 0:
            await self._clock.sleep(wait)

    def penalize(self, retry_after: float) -> None:
        """Push every replica's next slot past the platform's retry_after (fire and forget)."""
        task: asyncio.Task[object] = asyncio.ensure_future(
            self._redis.eval(_PENALIZE, 1, self._key, str(retry_after))
        )
        self._pending.add(task)
        task.add_done_callback(self._settle)

    def _settle(self, task: asyncio.Task[object]) -> None:
        """A failed penalty only costs pacing accuracy; never leave an unretrieved exception."""
        self._pending.discard(task)
        if not task.cancelled():
            task.exception()
