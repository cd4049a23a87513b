"""Budgets shared through a real Redis by several replicas, each with its own connection."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.pacing import RedisPacer, RedisWindowPacer
from tests.services import RedisServer, free_port

REPLICAS = 3
# Seconds between Redis admitting a write and the test stamping it; more on a loaded machine.
JITTER = 0.1


@pytest_asyncio.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[aioredis.Redis]]:
    """One Redis connection per replica, on an emptied server."""
    connections = [aioredis.Redis.from_url(redis_server.url) for _ in range(REPLICAS)]
    await connections[0].flushall()
    try:
        yield connections
    finally:
        for connection in connections:
            await connection.aclose()


def most_in_any_window(stamps: list[float], window: float) -> int:
    """The most stamps that fall in any window of ``window`` seconds."""
    ordered = sorted(stamps)
    return max(
        bisect.bisect_left(ordered, start + window) - index for index, start in enumerate(ordered)
    )


async def test_slots_are_spaced_across_replicas(clients: list[aioredis.Redis]) -> None:
    pacers = [RedisPacer(client, "pace:chat", 0.3) for client in clients]
    loop = asyncio.get_running_loop()
    stamps: list[float] = []

    async def write(pacer: RedisPacer) -> None:
        await pacer.acquire()
        stamps.append(loop.time())

    await asyncio.gather(*(write(pacers[i % REPLICAS]) for i in range(8)))
    gaps = [b - a for a, b in zip(sorted(stamps), sorted(stamps)[1:], strict=False)]
    assert min(gaps) > 0.3 - JITTER
    assert max(stamps) - min(stamps) < 8 * 0.3 + 0.5  # and no slot was wasted on the way


async def test_the_window_caps_what_is_sent_across_replicas(
    clients: list[aioredis.Redis],
) -> None:
    pacers = [RedisWindowPacer(client, "pace:sent", 10, 0.5) for client in clients]
    loop = asyncio.get_running_loop()
    stamps: list[float] = []

    async def write(pacer: RedisWindowPacer) -> None:
        await pacer.acquire()
        stamps.append(loop.time())

    started = loop.time()
    await asyncio.gather(*(write(pacers[i % REPLICAS]) for i in range(45)))
    assert most_in_any_window(stamps, 0.5 - JITTER) <= 10
    assert max(stamps) - started < 45 / 10 * 0.5 + 0.6  # full use of the budget, no stalls


async def test_a_stall_cannot_release_a_burst(clients: list[aioredis.Redis]) -> None:
    """Writers late for their slots (a stalled process) still meet the window when they wake."""
    slots = [RedisPacer(client, "pace:bot", 0.05) for client in clients]
    windows = [RedisWindowPacer(client, "pace:sent", 20, 1.0) for client in clients]
    loop = asyncio.get_running_loop()
    stamps: list[float] = []

    async def write(index: int) -> None:
        await slots[index % REPLICAS].acquire()
        if index == 10:
            time.sleep(0.5)  # the whole process stalls: slots fall due meanwhile
        await windows[index % REPLICAS].acquire()
        stamps.append(loop.time())

    await asyncio.gather(*(write(i) for i in range(60)))
    assert most_in_any_window(stamps, 1.0 - JITTER) <= 20


async def test_pacing_goes_on_locally_when_redis_is_unreachable() -> None:
    client = aioredis.Redis(
        port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    pacer = RedisWindowPacer(client, "pace:sent", 2, 0.6)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    try:
        for _ in range(4):
            await pacer.acquire()
            stamps.append(loop.time())
    finally:
        await client.aclose()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) > 0.3 - JITTER  # one write per window/limit, as the budget allows
