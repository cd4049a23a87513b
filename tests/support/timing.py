"""How long tests wait for real I/O, from one place, so the suite holds on a busy machine.

CI machines are shared: another CPU-heavy job can halve the speed of everything a test runs
(the bot, the fakes, Redis, subprocesses). Tests therefore never bound elapsed wall-clock time
tightly. They use virtual time where the code takes a clock (looptime, an injected
``core.clock.Clock``), check the order of events rather than their timing, and give every wait
for something real (a reply to land, a process to listen, a stream to start) a deadline of
``patient(seconds)``: what it takes on an idle machine times ``SLOW_FACTOR``. A wait ends as
soon as its condition holds, so a generous deadline costs nothing when the test passes.

``PARLEY_TEST_SLOW_FACTOR`` overrides the factor (e.g. 10 on a very slow emulated runner).
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable

SLOW_FACTOR = max(1.0, float(os.environ.get("PARLEY_TEST_SLOW_FACTOR", "3")))


def patient(seconds: float) -> float:
    """A deadline for something that takes up to ``seconds`` on an idle machine."""
    return seconds * SLOW_FACTOR


async def eventually(
    condition: Callable[[], bool] | Callable[[], Awaitable[bool]],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> float:
    """Poll ``condition`` until it holds; fail after ``patient(timeout)`` seconds.

    Returns the (event-loop) seconds it took, for reports; never assert on them.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + patient(timeout)
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return loop.time() - started
        if loop.time() > deadline:
            raise AssertionError(
                f"timed out after {patient(timeout):.0f} s waiting for {what or condition}"
            )
        await asyncio.sleep(interval)
