"""Shared fixtures: a real redis-server per session, Redis clients, the fake vLLM server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from hypothesis import settings

from tests.services import RedisServer, start_redis
from tests.support.cluster import RedisClusterSet, redis_cluster
from tests.support.sentinel import SentinelSet, sentinel_set

pytest_plugins = ["tests.fakes.fixtures"]

# Property tests: a quick profile in CI, a long one on demand (`make fuzz`).
settings.register_profile("ci", max_examples=150, deadline=None, print_blob=True)
settings.register_profile("long", max_examples=10_000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def _main_thread_event_loop() -> Iterator[None]:
    """pytest-asyncio 1.5 leaks a loop after a sync test (its issue #724); with warnings as
    errors the ResourceWarning fails a later test. Give the main thread a loop we close."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session (each test flushes it)."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisClusterSet]:
    """One three-primary Redis Cluster for the session, started by the first test asking."""
    with redis_cluster() as started:
        yield started


@pytest.fixture(scope="session")
def sentinels() -> Iterator[SentinelSet]:
    """One Sentinel set (primary, replica, three sentinels) for the session, never failed over;
    started by the first test asking."""
    with sentinel_set() as started:
        yield started


@pytest_asyncio.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client on the session's real Redis, emptied before the test."""
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=2)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()
