"""Shared fixtures: a real redis-server per session, Redis clients, the fake vLLM server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from tests.services import RedisServer, start_redis

pytest_plugins = ["tests.fakes.fixtures"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session (each test flushes it)."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A client on the session's real Redis, emptied before the test."""
    client = aioredis.Redis.from_url(redis_server.url, socket_timeout=2)
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()
