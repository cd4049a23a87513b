"""The Redis client type the core is handed: one server (or a Sentinel's master) or a Cluster."""

from __future__ import annotations

from typing import TypeAlias

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

# Both speak the same commands; a Cluster routes each to the primary owning its key's slot.
RedisClient: TypeAlias = aioredis.Redis | RedisCluster

# What a Redis call raises when Redis, not our code, failed: redis-py's errors, the Cluster
# client's own (no reachable node, slots not covered) and the socket's.
REDIS_FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
