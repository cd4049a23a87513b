"""Real services for tests: a redis-server per test session, started and stopped here."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet_port() -> int:
    """A free loopback port below the ephemeral range.

    Clients (and the sentinels) reconnect in a loop to a primary that was killed; with its port
    among the ephemeral ones a connect can land on that very port (a TCP self-connect) and keep
    the port busy. A port the kernel never hands out as a source port rules that out.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError, IndexError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def missing_service(what: str) -> None:
    """A missing service fails the run in CI and skips locally."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} is not available")


@dataclass
class RedisServer:
    """A throwaway redis-server on loopback."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def url(self) -> str:
        """redis:// URL for this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Terminate and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port (data is not kept)."""
        self.stop()
        self.process = _spawn(self.port, self.directory)
        _wait_ready(self.port, self.process)


def _spawn(port: int, directory: Path) -> subprocess.Popen[bytes]:
    """Start redis-server without persistence."""
    binary = shutil.which("redis-server")
    assert binary is not None
    return subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until PING answers."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("redis-server exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def start_redis() -> RedisServer:
    """Start a redis-server or fail/skip as missing_service decides."""
    if shutil.which("redis-server") is None:
        missing_service("redis-server")
    directory = Path(tempfile.mkdtemp(prefix="parley-redis-"))
    port = free_port()
    process = _spawn(port, directory)
    _wait_ready(port, process)
    return RedisServer(port, process, directory)
