"""REDIS_SENTINELS: a Redis client that follows the master through a Sentinel failover."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from core.settings import CoreSettings


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's master discovery with the blocking pool's bounded wait for a free connection."""


class _Sentinel(Sentinel):
    """redis-py's Sentinel with one master discovery at a time, shared by everyone who asks.

    Its ``discover_master`` moves the sentinel that answered to the front of its list, with
    awaits in between: concurrent discoveries (every reply reconnecting at once in a failover)
    then duplicate one sentinel client in the list and drop another, whose connections are never
    closed. Sharing one discovery avoids that and spares the sentinels a thundering herd.
    """

    def __init__(self, sentinels: tuple[tuple[str, int], ...], **options: Any) -> None:
        super().__init__(sentinels, **options)
        self._discoveries: dict[str, asyncio.Future[tuple[str, int]]] = {}

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        """The master's address, from the discovery already under way if there is one."""
        pending = self._discoveries.get(service_name)
        if pending is None:
            discovery = super().discover_master(service_name)
            pending = asyncio.ensure_future(discovery)
            self._discoveries[service_name] = pending
            pending.add_done_callback(lambda done: self._settled(service_name, done))
        # Shielded: one caller giving up must not cancel the others' discovery.
        return await asyncio.shield(pending)

    def _settled(self, service_name: str, done: asyncio.Future[tuple[str, int]]) -> None:
        """Forget a finished discovery (its error is each waiter's, never 'unretrieved')."""
        if self._discoveries.get(service_name) is done:
            del self._discoveries[service_name]
        if not done.cancelled():
            done.exception()


def sentinel_client(
    settings: CoreSettings, options: dict[str, object], max_connections: int
) -> tuple[Sentinel, aioredis.Redis]:
    """REDIS_SENTINELS: a client of the current master that follows it through a failover.

    redis-py asks the sentinels for the master on every new connection and drops connections
    to a master that was demoted (a READONLY reply becomes a ConnectionError): both reach the
    core as StoreError, which the blip retry rides out.
    """
    sentinel_password = settings.redis_sentinel_password
    sentinel = _Sentinel(
        settings.redis_sentinels,
        sentinel_kwargs={
            "socket_timeout": settings.redis_timeout,
            "socket_connect_timeout": settings.redis_timeout,
            "password": sentinel_password.get_secret_value() if sentinel_password else None,
        },
    )
    password = settings.redis_password
    client = sentinel.master_for(
        settings.redis_sentinel_master,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=max_connections,
        timeout=max(settings.redis_timeout, 5.0),
        password=password.get_secret_value() if password else None,
        **options,  # type: ignore[arg-type]
    )
    return sentinel, client
