"""Keys renamed between releases: what lives under an old name is copied once, at start."""

from __future__ import annotations

import logging

from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded

log = logging.getLogger(__name__)


async def upgrade_keys(redis: RedisClient, keys: KeySpace) -> None:
    """Copy the access lists from their untagged names (before Cluster support) to the tagged ones.

    The old keys stay for replicas of the previous release during a rolling upgrade; a marker
    makes the copy happen once, so an entry removed later is not brought back by a restart.
    """
    marker = keys.access_list("allow") + ":copied"  # same hash tag as the lists

    async def run() -> None:
        if await redis.exists(marker):
            return
        copied = 0
        for kind in ("allow", "deny"):
            members = await redis.smembers(keys.named(kind))
            if members:
                copied += int(await redis.sadd(keys.access_list(kind), *members))
        await redis.set(marker, "1")
        if copied:
            log.info("access lists moved to their Cluster-ready keys (%d entries)", copied)

    await guarded("key upgrade", run)
