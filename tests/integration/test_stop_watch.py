"""Stop requests from other replicas, watched by one task per process on a real Redis.

A process polls one bot-wide counter per tick instead of every running turn's stop key, and
reads the stop keys (one pipeline) only when another replica bumped the counter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import open_redis
from core.conversation import ConversationKey
from core.settings import CoreSettings
from core.store.client import RedisClient
from core.turns import TurnCoordinator, TurnLease
from tests.services import RedisServer
from tests.support.messengers import STORES, store_settings
from tests.support.timing import eventually

TURNS = 20
WATCHER = "stop watch"  # the watcher task's name in core/turns.py


def conversation(n: int) -> ConversationKey:
    """The n-th of several conversations, spread over a Cluster's slots by their hash tags."""
    return ConversationKey("telegram", str(-100 - n), f"user{n}")


@dataclass
class Held:
    """Turns held open in one coordinator until ``release``."""

    turns: TurnCoordinator
    leases: dict[ConversationKey, TurnLease] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    released: dict[ConversationKey, asyncio.Event] = field(default_factory=dict)

    def start(self, key: ConversationKey) -> None:
        """Begin a turn for ``key`` that runs until released."""
        self.released[key] = asyncio.Event()
        self.tasks.append(asyncio.create_task(self._hold(key)))

    async def _hold(self, key: ConversationKey) -> None:
        """Run one turn until released."""
        async with self.turns.turn(key) as lease:
            self.leases[key] = lease
            await self.released[key].wait()

    async def end(self, key: ConversationKey) -> None:
        """Let one turn end, and wait until it has."""
        self.released[key].set()
        await eventually(lambda: self.turns.running(key) is None, what=f"the turn of {key} ends")

    async def close(self) -> None:
        """End every turn still held."""
        for event in self.released.values():
            event.set()
        await asyncio.gather(*self.tasks)


@contextlib.asynccontextmanager
async def holding(turns: TurnCoordinator) -> AsyncIterator[Held]:
    """Turns held in ``turns``; all of them end on exit."""
    held = Held(turns)
    try:
        yield held
    finally:
        await held.close()


def watchers() -> list[asyncio.Task[object]]:
    """The stop-watcher tasks alive in this event loop."""
    return [t for t in asyncio.all_tasks() if t.get_name() == WATCHER and not t.done()]


async def command_calls(client: aioredis.Redis, command: str) -> int:
    """How many times Redis ran ``command`` since its stats were last reset."""
    stats = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest_asyncio.fixture
async def admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A connection to the session's Redis for setup and stats, on an emptied server."""
    client = aioredis.Redis.from_url(redis_server.url)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()


@pytest_asyncio.fixture(params=STORES)
async def replicas(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[tuple[TurnCoordinator, TurnCoordinator]]:
    """Two coordinators with clients of their own (two processes) on a Redis, a Sentinel-managed
    Redis or a Cluster, built as the bot builds its client."""
    shape = request.param
    where = {"redis_url": redis_server.url, **store_settings(request, shape)}
    settings = CoreSettings(_env_file=None, **where)
    async with contextlib.AsyncExitStack() as stack:
        clients: list[RedisClient] = []
        for _ in range(2):
            client, _description = await stack.enter_async_context(open_redis(settings))
            clients.append(client)
        if shape == "redis":
            await clients[0].flushall()  # the others are emptied by store_settings
        first, second = (TurnCoordinator(c, lease_seconds=1.5) for c in clients)
        yield first, second


async def test_many_turns_cost_one_counter_read_per_tick(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        # A long lease: no renewal (its script GETs too) falls into the measurement.
        turns = TurnCoordinator(client, lease_seconds=300)
        interval = 1.0  # min(1, lease / 3)
        keys = [conversation(n) for n in range(TURNS)]
        async with holding(turns) as held:
            for key in keys:
                held.start(key)
            await eventually(lambda: len(turns.leases()) == TURNS, what="every turn running")
            assert len(watchers()) == 1  # one for the process, not one per turn

            await admin.config_resetstat()
            loop = asyncio.get_running_loop()
            began = loop.time()
            await eventually(
                lambda: _at_least(admin, "get", 3), timeout=20, what="three looks at the counter"
            )
            gets = await command_calls(admin, "get")
            getdels = await command_calls(admin, "getdel")
            elapsed = loop.time() - began

            # Per tick, one GET for the whole process; a turn's stop key is read once at most
            # (when the turn began), not once a tick. Each tick waits an interval at least.
            assert 3 <= gets <= elapsed / interval + 2
            assert getdels <= TURNS
            assert not any(lease.stop.is_set() for lease in held.leases.values())
    finally:
        await client.aclose()


async def _at_least(client: aioredis.Redis, command: str, calls: int) -> bool:
    """Whether Redis ran ``command`` at least ``calls`` times since the stats reset."""
    return await command_calls(client, command) >= calls


async def test_a_stop_from_another_replica_stops_that_turn_only(
    replicas: tuple[TurnCoordinator, TurnCoordinator],
) -> None:
    first, second = replicas
    keys = [conversation(n) for n in range(6)]
    async with holding(first) as held:
        for key in keys:
            held.start(key)
        await eventually(lambda: len(held.leases) == len(keys), what="every turn running")

        for stopped in (keys[2], keys[4]):  # the second one after the counter moved once already
            assert first.running(stopped) is not None
            assert await second.signal_stop(stopped, f"stop {stopped.user}") is True
            lease = held.leases[stopped]
            await eventually(lease.stop.is_set, timeout=5, what=f"the turn of {stopped} stopped")
            assert lease.reason == f"stop {stopped.user}"

        others = [held.leases[k] for k in keys if k not in (keys[2], keys[4])]
        assert not any(lease.stop.is_set() for lease in others)
        assert all(first.running(k) is not None for k in keys)


async def test_the_watcher_ends_with_the_last_turn(
    redis_server: RedisServer, admin: aioredis.Redis
) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    other_client = aioredis.Redis.from_url(redis_server.url)
    try:
        turns = TurnCoordinator(client, lease_seconds=1.5)
        other = TurnCoordinator(other_client, lease_seconds=1.5)
        ada, bob = conversation(1), conversation(2)
        assert watchers() == []
        async with holding(turns) as held:
            held.start(ada)
            held.start(bob)
            await eventually(lambda: len(held.leases) == 2, what="both turns running")
            assert len(watchers()) == 1

            await held.end(ada)
            assert len(watchers()) == 1  # bob's turn still runs

            await held.end(bob)
            assert watchers() == []  # the last turn's end waited for it

            # The next turn starts a watcher again, and it still sees remote stops.
            held.start(ada)
            await eventually(lambda: turns.running(ada) is not None, what="a turn again")
            assert len(watchers()) == 1
            assert await other.signal_stop(ada) is True
            lease = turns.running(ada)
            assert lease is not None
            await eventually(lease.stop.is_set, timeout=5, what="the new turn stopped")
        assert watchers() == []
    finally:
        await client.aclose()
        await other_client.aclose()
