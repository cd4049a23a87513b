"""Time as a dependency, so pacing and timeouts are testable without real waiting."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic time and sleeping; tests inject a virtual clock."""

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (cancellable)."""
        ...


class LoopClock:
    """The running event loop's clock, so tests with a virtual-time loop stay instant."""

    def now(self) -> float:
        """The event loop's monotonic time, or time.monotonic() outside a loop."""
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """asyncio.sleep, never negative."""
        await asyncio.sleep(max(0.0, seconds))


def wall_time() -> float:
    """Unix time for timestamps that are stored or shown."""
    return time.time()
