"""`python -m bots …` as real processes for tests: configured by environment, logs captured.

A process's stderr goes to a file so a test can read it afterwards (and check it for
tracebacks). Processes run in a scratch directory so no `.env` of the checkout leaks into
their settings, and are stopped by their own pid: SIGTERM for a clean stop, SIGKILL to
simulate a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.support.logs import unhandled_in_text
from tests.support.timing import patient

ROOT = Path(__file__).resolve().parents[2]

# Settings a test must never inherit from the environment that runs it.
_OWN_PREFIXES = (
    "TELEGRAM_",
    "SLACK_",
    "LLM_",
    "REDIS",
    "BUSY_POLICY",
    "SHOW_REASONING",
    "LOCK_LEASE",
    "QUOTA_",
    "ACCESS",
    "ADMIN_IDS",
    "METRICS_LISTEN",
    "LOG_",
    "HISTORY_",
    "DATA_DIR",
    "SHUTDOWN_GRACE",
    "PERSONAS_FILE",
    "DEFAULT_PERSONA",
)


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The current environment without Parley's settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_OWN_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class BotProcess:
    """One running `python -m bots <command>` and where its log goes."""

    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    port: int = 0
    killed: bool = False
    returncode: int | None = field(default=None)

    @property
    def pid(self) -> int:
        """The process id (signals go to it, never to a name)."""
        return self.process.pid

    @property
    def url(self) -> str:
        """Root of the HTTP listener (webhook or events) on loopback."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.returncode is None

    def log(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def problems(self) -> list[str]:
        """Log lines that show an unhandled exception (the whole log is the bot's own)."""
        return unhandled_in_text(self.log())

    async def wait_http(self, path: str = "/healthz", *, timeout: float = 60.0) -> None:
        """Until the process answers ``path`` with 200 (or fail if it exited)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if not self.running:
                    raise AssertionError(
                        f"{self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}"
                    )
                try:
                    async with session.get(self.url + path) as response:
                        if response.status == 200:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} did not listen:\n{self.log()[-3000:]}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-whatever, as in a crash or OOM kill."""
        if self.running:
            self.killed = True
            self.process.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float | None = None) -> int:
        """SIGTERM and wait (SIGKILL after ``timeout``, by default patient(20) s); returns the
        exit code."""
        timeout = patient(20.0) if timeout is None else timeout
        if self.running:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            code = await self.process.wait()
        self.returncode = code
        return code


async def start_bot(
    command: str,
    env: Mapping[str, str],
    *,
    log_dir: Path,
    name: str,
    port: int = 0,
) -> BotProcess:
    """Start `python -m bots <command>` with a clean environment plus ``env``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bots",
            command,
            cwd=log_dir,
            env=clean_environment(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    return BotProcess(name, process, log_path, port)


async def start_module(
    module: str, args: list[str], *, log_dir: Path, name: str, port: int = 0
) -> BotProcess:
    """Start `python -m <module> args…` from the checkout (e.g. the fake vLLM server)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    env = clean_environment({"PYTHONPATH": str(ROOT)})
    with log_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    return BotProcess(name, process, log_path, port)


@contextlib.asynccontextmanager
async def fleet(processes: list[BotProcess]) -> AsyncIterator[list[BotProcess]]:
    """Hold processes for a test; on exit stop every one still running (by its pid).

    A test that fails (say, a wait timed out) while a process had died on its own gets that
    process's log attached: the wait's message alone would not say why nothing came.
    """
    try:
        yield processes
    except AssertionError as failure:
        for process in processes:
            if not process.running and not process.killed:
                failure.add_note(
                    f"{process.name} exited with {process.process.returncode}:\n"
                    f"{process.log()[-3000:]}"
                )
        raise
    finally:
        await asyncio.gather(*(p.stop() for p in processes), return_exceptions=True)


async def stop_all(processes: list[BotProcess]) -> dict[str, int]:
    """SIGTERM every running process at once; returns each exit code by name."""
    codes = await asyncio.gather(*(p.stop() for p in processes))
    return {p.name: code for p, code in zip(processes, codes, strict=True)}
