"""Turn leases on a real Redis, with two coordinators standing in for two bot processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.lock import Lock

from core.conversation import ConversationKey
from core.store.keys import KeySpace
from core.turns import TurnBusy, TurnCoordinator
from tests.services import RedisServer
from tests.support.timing import eventually, patient

KEY = ConversationKey("telegram", "1", "ada")


@pytest_asyncio.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[tuple[TurnCoordinator, ...]]:
    """Two coordinators with their own connections, as two processes would have."""
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    await clients[0].flushall()
    try:
        yield tuple(TurnCoordinator(c, lease_seconds=1.5) for c in clients)
    finally:
        for client in clients:
            await client.aclose()


async def test_turns_in_one_process_run_in_arrival_order(
    replicas: tuple[TurnCoordinator, ...],
) -> None:
    first, _ = replicas
    order: list[int] = []

    async def run(n: int) -> None:
        async with first.turn(KEY):
            order.append(n)
            await asyncio.sleep(0.01)
            order.append(n)

    await asyncio.gather(*(run(n) for n in range(5)))
    assert order == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


async def test_second_replica_waits_for_the_first(replicas: tuple[TurnCoordinator, ...]) -> None:
    first, second = replicas
    events: list[str] = []

    async def hold() -> None:
        async with first.turn(KEY):
            events.append("first in")
            await asyncio.sleep(0.3)  # the second replica asks meanwhile, however slow
            events.append("first out")

    holder = asyncio.create_task(hold())
    await eventually(lambda: events == ["first in"], what="the first replica's turn")
    assert await second.busy(KEY)
    async with second.turn(KEY):
        events.append("second in")
    await holder
    assert events == ["first in", "first out", "second in"]
    assert not await second.busy(KEY)


async def test_reject_without_waiting(replicas: tuple[TurnCoordinator, ...]) -> None:
    first, second = replicas
    async with first.turn(KEY):
        with pytest.raises(TurnBusy):
            async with second.turn(KEY, wait=False):
                pytest.fail("must not get the turn")
        with pytest.raises(TurnBusy):
            async with first.turn(KEY, wait=False):
                pytest.fail("must not get the turn")


async def test_stop_reaches_the_replica_running_the_turn(
    replicas: tuple[TurnCoordinator, ...],
) -> None:
    first, second = replicas
    async with first.turn(KEY) as lease:
        assert await second.signal_stop(KEY, "stopped") is True
        await asyncio.wait_for(lease.stop.wait(), patient(3))
        assert lease.reason == "stopped"
    assert await second.signal_stop(KEY) is False  # nothing running any more


async def test_stale_stop_does_not_hit_the_next_turn(replicas: tuple[TurnCoordinator, ...]) -> None:
    first, second = replicas
    await first._redis.set(KeySpace().stop(KEY), "stopped")  # left over from a crash
    async with first.turn(KEY) as lease:
        await asyncio.sleep(1.2)
        assert not lease.stop.is_set()
    assert second.running(KEY) is None


async def test_lease_is_renewed_while_the_turn_runs(replicas: tuple[TurnCoordinator, ...]) -> None:
    first, second = replicas
    async with first.turn(KEY):
        await asyncio.sleep(2.5)  # longer than the 1.5 s lease
        with pytest.raises(TurnBusy):
            async with second.turn(KEY, wait=False):
                pytest.fail("the renewed lease must still hold")


async def test_a_dead_holder_blocks_for_one_lease_at_most(redis_server: RedisServer) -> None:
    crashed = aioredis.Redis.from_url(redis_server.url)
    alive = aioredis.Redis.from_url(redis_server.url)
    try:
        await crashed.flushall()
        orphan = Lock(crashed, KeySpace().lock(KEY), timeout=1.0, thread_local=False)
        loop = asyncio.get_running_loop()
        assert await orphan.acquire(token="dead-process")
        taken = loop.time()  # the orphan expires 1 s after this (Redis's clock)
        await crashed.aclose()  # the process dies without releasing
        coordinator = TurnCoordinator(alive, lease_seconds=1.0)
        async with coordinator.turn(KEY):
            blocked = loop.time() - taken
        # Blocked until the orphan's lease (1 s) ran out, not much longer: one lease plus the
        # lock's polling, with room for a busy machine's scheduling.
        assert 0.3 < blocked < 1.0 + patient(0.3)
    finally:
        await alive.aclose()


async def test_only_the_owner_releases(replicas: tuple[TurnCoordinator, ...]) -> None:
    first, second = replicas
    name = KeySpace().lock(KEY)
    async with first.turn(KEY):
        await first._redis.set(name, "someone-else", px=5000)  # lease lost and taken over
    assert await first._redis.get(name) == b"someone-else"
    assert await second.busy(KEY)


async def test_a_lease_that_expired_unclaimed_is_taken_back(
    replicas: tuple[TurnCoordinator, ...],
) -> None:
    first, second = replicas
    name = KeySpace().lock(KEY)
    async with first.turn(KEY) as lease:
        await first._redis.delete(name)  # expired while Redis was too slow to renew it
        await eventually(
            lambda: second.busy(KEY), timeout=5, what="the lease held again by the same turn"
        )
        assert not lease.stop.is_set()
    assert not await second.busy(KEY)


async def test_a_lease_taken_by_another_turn_stops_this_one(
    replicas: tuple[TurnCoordinator, ...],
) -> None:
    first, _ = replicas
    name = KeySpace().lock(KEY)
    async with first.turn(KEY) as lease:
        await first._redis.set(name, "another-turn", px=50_000)
        await eventually(lease.stop.is_set, timeout=5, what="the turn to be stopped")
        assert lease.reason == "lease lost"


async def test_a_turn_left_running_by_a_dead_process_is_reported_once(
    replicas: tuple[TurnCoordinator, ...],
) -> None:
    first, second = replicas
    async with first.turn(KEY) as lease:
        assert not lease.previous_lost  # nothing ran before
    # A process killed mid-turn leaves its running mark behind (and its lease expires).
    await first._redis.set(KeySpace().running(KEY), "a-dead-turn")
    async with second.turn(KEY) as lease:
        assert lease.previous_lost
    async with first.turn(KEY) as lease:
        assert not lease.previous_lost  # told once; the turn after it ended normally
    assert not await first._redis.exists(KeySpace().running(KEY))


async def test_a_turn_that_fails_still_clears_its_running_mark(
    replicas: tuple[TurnCoordinator, ...],
) -> None:
    first, second = replicas
    with pytest.raises(RuntimeError):
        async with first.turn(KEY):
            raise RuntimeError("the turn broke")
    async with second.turn(KEY) as lease:
        assert not lease.previous_lost
