"""Helpers the chaos scenarios share: a restartable Redis and a quick-thinking fake model."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.fake_vllm import Reply, default_responder
from tests.services import RedisServer, _spawn, _wait_ready, missing_service, quiet_port

FILLER = " ".join(f"w{i}" for i in range(40))  # makes an echoed answer stream for a while


def quick_thought(messages: list[dict[str, str]]) -> Reply:
    """The default echo answer after a one-word reasoning, so the answer starts at once."""
    return Reply(reasoning="Short.", answer=default_responder(messages).answer)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own: it gets restarted, the session's does not."""
    if shutil.which("redis-server") is None:
        missing_service("redis-server")
    directory = Path(tempfile.mkdtemp(prefix="parley-chaos-redis-"))
    port = quiet_port()
    server = RedisServer(port, _spawn(port, directory), directory)
    try:
        _wait_ready(port, server.process)
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def restart_keeping_data(server: RedisServer, down: float = 0.3) -> float:
    """SHUTDOWN SAVE, stay down ``down`` s, then the same server again; returns the downtime.

    The restarted server loads the dump from its directory, as a Redis with persistence
    (AOF or RDB) does: what Redis held before the restart still holds after it.
    """
    began = time.monotonic()
    # A bare socket: redis-py would retry the command against the server it just stopped.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"SHUTDOWN SAVE\r\n")
        server.process.wait(10)
    time.sleep(down)  # runs in a worker thread: the bots' event loop carries on meanwhile
    server.restart()  # same port and directory
    return time.monotonic() - began
