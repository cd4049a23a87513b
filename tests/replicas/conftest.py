"""Fixtures for the many-replicas test: a vLLM-compatible server in its own process.

The bots run as separate processes; the fake vLLM runs as one too, so the test process (the
fake platform, the forwarder and the driver) keeps a quiet event loop and the fake platform's
timestamps stay honest. The chaos suite's log check covers this process (the bots' own logs
are checked by the test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from core.store.client import RedisClient
from tests.chaos.conftest import no_unhandled_exceptions
from tests.services import RedisServer, free_port
from tests.support.cluster import RedisClusterSet
from tests.support.messengers import STORES
from tests.support.processes import start_module
from tests.support.sentinel import SentinelSet
from tests.support.timing import patient

__all__ = ["no_unhandled_exceptions", "shared_redis", "vllm_process"]


@dataclass
class SharedRedis:
    """Where every replica keeps its state: their environment for it, and the test's client."""

    env: dict[str, str]
    client: RedisClient


@pytest_asyncio.fixture(params=STORES)
async def shared_redis(
    request: pytest.FixtureRequest, redis_server: RedisServer
) -> AsyncIterator[SharedRedis]:
    """The session's redis-server, the Sentinel set or the three-primary Cluster; emptied first."""
    client: RedisClient
    if request.param == "cluster":
        cluster: RedisClusterSet = request.getfixturevalue("cluster")
        env = {"REDIS_URL": cluster.url, "REDIS_CLUSTER": "true"}
        client = RedisCluster.from_url(cluster.url, socket_timeout=patient(2))
    elif request.param == "sentinel":
        sentinels: SentinelSet = request.getfixturevalue("sentinels")
        env = {"REDIS_SENTINELS": sentinels.addresses}
        # The test reads the primary directly: this set never fails over.
        client = aioredis.Redis(port=sentinels.master_port(), socket_timeout=patient(2))
    else:
        env = {"REDIS_URL": redis_server.url}
        client = aioredis.Redis.from_url(redis_server.url, socket_timeout=patient(2))
    try:
        await client.flushall()
        yield SharedRedis(env, client)
    finally:
        await client.aclose()


# A real R1 on a GPU streams a token every ~20 ms and starts after a few hundred ms; the
# platforms' windows are scaled by 0.1 in these tests, and so is the model's pace.
TOKEN_INTERVAL = 0.002
FIRST_TOKEN_DELAY = 0.03


@pytest_asyncio.fixture
async def vllm_process(tmp_path: Path) -> AsyncIterator[str]:
    """`python -m tests.fakes.fake_vllm` streaming at a scaled realistic pace; yields /v1 URL."""
    port = free_port()
    server = await start_module(
        "tests.fakes.fake_vllm",
        [
            "--port", str(port),
            "--token-interval", str(TOKEN_INTERVAL),
            "--first-token-delay", str(FIRST_TOKEN_DELAY),
            "--max-model-len", "32768",
        ],
        log_dir=tmp_path / "logs",
        name="fake-vllm",
        port=port,
    )  # fmt: skip
    try:
        await server.wait_http("/health")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await server.stop()  # its log may show requests cut by the replica killed on purpose
