"""A Redis Sentinel set on loopback for tests: one primary, one replica, three sentinels.

Each process runs from its own temp dir (a sentinel rewrites its config file) on a port below
the ephemeral range (see ``quiet_port``), and is stopped by its own pid. Helpers force a
failover the two ways an operator or a crash does: ``SENTINEL FAILOVER`` and SIGKILL of the
primary. A missing redis-server fails the run in CI (``tests.services.missing_service``).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import redis

from tests.services import missing_service, quiet_port
from tests.support.redis_nodes import Node, data_node, until, wait_ping
from tests.support.timing import patient

T = TypeVar("T")
MASTER = "mymaster"
SENTINELS = 3
QUORUM = 2


@dataclass
class SentinelSet:
    """The running set; ``data`` holds the primary and the replica in start order."""

    binary: str
    root: Path
    data: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS for this set."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def master_port(self) -> int:
        """The primary's port as the first sentinel that answers names it."""
        for node in self.sentinels:
            with contextlib.suppress(redis.RedisError), node.client() as client:
                _, port = client.sentinel_get_master_addr_by_name(MASTER)
                return int(port)
        raise RuntimeError("no sentinel answers")

    def node(self, port: int) -> Node:
        """The data node listening on ``port``."""
        return next(n for n in self.data if n.port == port)

    def failover(self) -> int:
        """``SENTINEL FAILOVER`` (what an operator runs for maintenance); the old master's port."""
        old = self.master_port()
        with self.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", MASTER)
        return old

    def kill_primary(self) -> int:
        """SIGKILL the primary (the sentinels must notice and promote); its port."""
        old = self.master_port()
        self.node(old).kill()
        return old

    def wait_new_master(self, old: int, timeout: float = 30.0) -> int:
        """Until every sentinel names another master and it says it is one; its port."""

        def promoted() -> int | None:
            ports = set()
            for node in self.sentinels:
                with node.client() as client:
                    _, port = client.sentinel_get_master_addr_by_name(MASTER)
                    ports.add(int(port))
            if len(ports) != 1 or old in ports:
                return None
            (port,) = ports
            with self.node(port).client() as client:
                return port if client.role()[0] == "master" else None

        return until(promoted, timeout, f"a master other than :{old}")

    def wait_demoted(self, port: int, timeout: float = 40.0) -> None:
        """Until the old master on ``port`` has been turned into a replica (after a forced
        failover Sentinel leaves it a writable master for about ten seconds first)."""

        def demoted() -> bool | None:
            with self.node(port).client() as client:
                return True if client.role()[0] == "slave" else None

        until(demoted, timeout, f"the old master on :{port} to become a replica")

    def wait_settled(self, timeout: float = 30.0) -> None:
        """Until the sentinels agree on a master with a synced replica and see each other."""

        def settled() -> bool | None:
            port = self.master_port()
            for node in self.sentinels:
                with node.client() as client:
                    state = client.sentinel_master(MASTER)
                if int(state["port"]) != port or int(state["num-other-sentinels"]) < SENTINELS - 1:
                    return None
                if int(state["num-slaves"]) < 1 or state.get("is_failover_in_progress"):
                    return None
            with self.node(port).client() as client:
                info = client.info("replication")
            online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            return True if any(v.get("state") == "online" for v in online) else None

        until(settled, timeout, "a settled sentinel set")

    def flush(self) -> None:
        """Empty the primary (the replica follows)."""
        with self.node(self.master_port()).client() as client:
            client.flushall()
            client.wait(1, int(patient(5) * 1000))

    def stop(self) -> None:
        """Stop every process of the set (by pid) and remove its directories."""
        for node in [*self.sentinels, *self.data]:
            with contextlib.suppress(Exception):
                node.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _sentinel_node(binary: str, root: Path, name: str, primary: int, down_after_ms: int) -> Node:
    """A sentinel watching ``primary``; its config file lives (and is rewritten) in its dir."""
    directory = root / name
    directory.mkdir()
    port = quiet_port()
    config = directory / "sentinel.conf"
    config.write_text(
        f"port {port}\n"
        "bind 127.0.0.1\n"
        f"dir {directory}\n"
        f"logfile {directory / 'sentinel.log'}\n"
        f"sentinel monitor {MASTER} 127.0.0.1 {primary} {QUORUM}\n"
        f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
        f"sentinel failover-timeout {MASTER} 10000\n"
        f"sentinel parallel-syncs {MASTER} 1\n"
    )
    process = subprocess.Popen(
        [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return Node(port, directory, process)


def start_sentinel_set(*, down_after_ms: int = 1000, stubborn_primary: bool = False) -> SentinelSet:
    """Start the set and wait until it is settled, or fail/skip as missing_service decides.

    ``stubborn_primary``: the primary refuses REPLICAOF, so after a failover Sentinel cannot
    turn it into a replica and it stays a writable master (a split brain that holds still).
    """
    binary = shutil.which("redis-server")
    if binary is None:
        missing_service("redis-server (for Redis Sentinel)")
        raise AssertionError("unreachable")  # missing_service raises
    root = Path(tempfile.mkdtemp(prefix="parley-sentinel-"))
    cluster = SentinelSet(binary, root)
    try:
        stubborn = ("--rename-command", "REPLICAOF", "", "--rename-command", "SLAVEOF", "")
        primary = data_node(binary, root, "primary", None, stubborn if stubborn_primary else ())
        cluster.data.append(primary)
        wait_ping(primary)
        replica = data_node(binary, root, "replica", primary.port)
        cluster.data.append(replica)
        wait_ping(replica)
        for n in range(SENTINELS):
            node = _sentinel_node(binary, root, f"sentinel-{n}", primary.port, down_after_ms)
            cluster.sentinels.append(node)
            wait_ping(node)
        cluster.wait_settled()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def sentinel_set(
    *, down_after_ms: int = 1000, stubborn_primary: bool = False
) -> Iterator[SentinelSet]:
    """A set for the duration of a ``with`` block, always torn down."""
    cluster = start_sentinel_set(down_after_ms=down_after_ms, stubborn_primary=stubborn_primary)
    try:
        yield cluster
    finally:
        cluster.stop()
