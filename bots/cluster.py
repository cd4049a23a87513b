"""REDIS_CLUSTER: a client that finds every node from one and routes each key to its slot."""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from core.errors import ConfigError
from core.settings import CoreSettings


def cluster_client(
    settings: CoreSettings, url: str, options: dict[str, object], max_connections: int
) -> RedisCluster:
    """A Cluster client seeded by REDIS_URL (any node; the password, if any, in the URL).

    Parley's scripts and transactions each touch keys of one hash tag (``core.store.keys``), so
    every one runs on a single primary; SCAN-based admin work visits every primary. A MOVED or
    ASK reply (a slot migrating) is followed by the client; a node that is down is a
    StoreError for the core's blip retry, like any Redis outage.
    """
    try:
        return RedisCluster.from_url(
            url,
            max_connections=max_connections,  # per node, as with one server
            require_full_coverage=True,  # a cluster missing slots is down, not half there
            **options,
        )
    except (RedisClusterException, ValueError) as exc:
        raise ConfigError(
            f"REDIS_URL is not usable with REDIS_CLUSTER=true: {exc}; name one node as "
            "redis://[:password@]host:port (no database number, no unix socket)"
        ) from None
