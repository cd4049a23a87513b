"""A private redis-server for local runs without REDIS_URL, so history survives restarts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis.asyncio as aioredis

from core.store.client import REDIS_FAILURES

log = logging.getLogger(__name__)
_SOCKET_PATH_MAX = 100

# How a program is found on PATH (shutil.which); tests pass their own instead of patching.
Which = Callable[[str], str | None]


def _socket_path(data_dir: Path) -> Path:
    """A unix socket in the data dir, or in the temp dir when that path is too long."""
    path = data_dir / "redis.sock"
    if len(str(path)) <= _SOCKET_PATH_MAX:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"parley-{digest}.sock"


async def _answers(socket: Path) -> bool:
    """Whether a redis-server already listens on ``socket`` (another local Parley started it)."""
    if not socket.exists():
        return False
    client = aioredis.Redis(unix_socket_path=str(socket), socket_timeout=1)
    try:
        return bool(await client.ping())
    except REDIS_FAILURES:
        return False
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def embedded_redis(
    data_dir: Path, *, which: Which = shutil.which
) -> AsyncIterator[str | None]:
    """Yield a unix-socket path to a persistent local redis-server, or None if none can run."""
    binary = which("redis-server")
    data_dir = data_dir.resolve() / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    socket = _socket_path(data_dir)
    if await _answers(socket):
        yield str(socket)
        return
    if binary is None:
        yield None
        return
    socket.unlink(missing_ok=True)
    process = await asyncio.create_subprocess_exec(
        binary,
        "--port", "0",
        "--unixsocket", str(socket),
        "--unixsocketperm", "700",
        "--dir", str(data_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--logfile", str(data_dir / "redis.log"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            if await _answers(socket):
                break
            if process.returncode is not None:
                raise RuntimeError(f"redis-server exited; see {data_dir / 'redis.log'}")
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"redis-server did not start; see {data_dir / 'redis.log'}")
        log.info("embedded redis-server with history in %s", data_dir)
        yield str(socket)
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 5)
            if process.returncode is None:
                process.kill()
