"""A Redis Cluster on loopback for tests: three primaries joined by `redis-cli --cluster create`.

Each node runs from its own temp dir (it writes its nodes.conf there) with its client port and
its cluster-bus port below the ephemeral range (see ``quiet_port``). A missing redis-server or
redis-cli fails the run in CI (``tests.services.missing_service``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import missing_service, quiet_port
from tests.support.redis_nodes import Node, data_node, until, wait_ping
from tests.support.timing import patient

PRIMARIES = 3
SLOTS = 16384


@dataclass
class RedisClusterSet:
    """The running cluster's primaries, in start order."""

    root: Path
    primaries: list[Node] = field(default_factory=list)

    @property
    def url(self) -> str:
        """REDIS_URL for REDIS_CLUSTER=true: one node; the client finds the others."""
        return f"redis://127.0.0.1:{self.primaries[0].port}"

    def key_counts(self, pattern: str) -> dict[int, int]:
        """How many keys matching ``pattern`` each primary holds, by port."""
        counts = {}
        for node in self.primaries:
            with node.client() as client:
                counts[node.port] = sum(1 for _ in client.scan_iter(match=pattern, count=500))
        return counts

    def flush(self) -> None:
        """Empty every primary."""
        for node in self.primaries:
            with node.client() as client:
                client.flushall()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node reports the cluster healthy, all slots served, every node known."""

        def healthy() -> bool | None:
            for node in self.primaries:
                with node.client() as client:
                    info = client.cluster("info")
                if info.get("cluster_state") != "ok":
                    return None
                if int(info.get("cluster_slots_ok", 0)) != SLOTS:
                    return None
                if int(info.get("cluster_known_nodes", 0)) != len(self.primaries):
                    return None
            return True

        until(healthy, timeout, "a healthy Redis Cluster")

    def stop(self) -> None:
        """Stop every node (by pid) and remove the directories."""
        for node in self.primaries:
            with contextlib.suppress(Exception):
                node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> RedisClusterSet:
    """Start the primaries, join them into one cluster and wait until it serves every slot."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        missing_service("redis-server and redis-cli (for Redis Cluster)")
        raise AssertionError("unreachable")  # missing_service raises
    root = Path(tempfile.mkdtemp(prefix="parley-cluster-"))
    cluster = RedisClusterSet(root)
    try:
        for n in range(PRIMARIES):
            bus = str(quiet_port())
            options = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                       "--cluster-node-timeout", "5000", "--cluster-port", bus)  # fmt: skip
            node = data_node(binary, root, f"node-{n}", None, options)
            cluster.primaries.append(node)
            wait_ping(node)
        addresses = [f"127.0.0.1:{node.port}" for node in cluster.primaries]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=patient(60),
        )
        cluster.wait_ok()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def redis_cluster() -> Iterator[RedisClusterSet]:
    """A cluster for the duration of a ``with`` block, always torn down."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
