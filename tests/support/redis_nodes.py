"""redis-server processes for the Sentinel and Cluster test sets: start, wait, stop by pid."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis

from tests.services import quiet_port
from tests.support.timing import patient

T = TypeVar("T")


@dataclass
class Node:
    """One redis-server process (a data node or a sentinel) and its directory."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        """A short-lived synchronous client (close it)."""
        return redis.Redis(port=self.port, socket_timeout=patient(2), decode_responses=True)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(patient(5))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(patient(5))

    def kill(self) -> None:
        """SIGKILL: gone at once, as in a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(patient(5))


def until(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``probe`` (errors count as "not yet") until it returns a value."""
    deadline = time.monotonic() + patient(timeout)
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            value = probe()
            if value is not None:
                return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_ping(node: Node) -> None:
    """Until the process answers PING."""

    def answers() -> bool | None:
        if node.process.poll() is not None:
            raise RuntimeError(f"redis-server on :{node.port} exited; see {node.directory}")
        with node.client() as client:
            return True if client.ping() else None

    until(answers, 10, f"redis-server on :{node.port}")


def data_node(
    binary: str, root: Path, name: str, replica_of: int | None, extra: tuple[str, ...] = ()
) -> Node:
    """A primary or replica without persistence, syncing without the diskless delay."""
    directory = root / name
    directory.mkdir()
    port = quiet_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory), "--repl-diskless-sync-delay", "0",
            "--logfile", str(directory / "redis.log")]  # fmt: skip
    if replica_of is not None:
        args += ["--replicaof", "127.0.0.1", str(replica_of)]
    args += extra
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Node(port, directory, process)
