"""The benchmark's helper processes: started, pinned away from the bot's core, timed, stopped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process from /proc (0 where /proc is unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def run_queue_wait() -> float:
    """Seconds this process's main thread has waited for a CPU while runnable (0 if unknown).

    On a shared machine this is how much of a benchmark's wall time went to other work."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass(frozen=True)
class CpuPlan:
    """Which CPUs the bot gets and which the fakes get; None when there is nothing to split."""

    bot: frozenset[int] | None
    helpers: frozenset[int] | None
    original: frozenset[int]

    @property
    def pinned(self) -> bool:
        """Whether the bot has a core of its own."""
        return self.bot is not None


def plan_cpus() -> CpuPlan:
    """The lowest CPU for the bot, the rest for the fakes, Redis and the load generator."""
    try:
        cpus = frozenset(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return CpuPlan(None, None, frozenset())
    if len(cpus) < 2:
        return CpuPlan(None, None, cpus)
    bot = min(cpus)
    return CpuPlan(frozenset({bot}), cpus - {bot}, cpus)


def pin(pid: int, cpus: frozenset[int] | None) -> None:
    """Restrict a process to ``cpus`` if pinning is possible (0 = this process)."""
    if cpus:
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(pid, cpus)


@dataclass
class Helper:
    """A helper server in its own process."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def cpu_seconds(self) -> float:
        """CPU the helper has used so far."""
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def spawn(name: str, module: str, cpus: frozenset[int] | None, timeout: float = 30.0) -> Helper:
    """Start ``python -m module --port 0`` and wait for its ``listening on URL`` line."""
    log_path = Path(tempfile.mkdtemp(prefix="parley-bench-")) / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    pin(process.pid, cpus)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("listening on "):
        process.kill()
        process.wait(5)
        raise RuntimeError(f"{name} did not start: {line!r}; see {log_path}")
    return Helper(name, line.removeprefix("listening on "), process, log_path)


async def serve_until_signalled(url: str) -> None:
    """A helper process's life: say where it listens (``spawn`` reads the line), then wait
    for SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {url}", flush=True)
    await stop.wait()
