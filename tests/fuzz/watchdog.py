"""A per-example time limit: a hang or a blow-up in product code fails one example, quickly.

pytest-timeout's alarm fires once per test; inside a hypothesis test that only fails the example
being run, and shrinking then replays the hanging input with no alarm left, for ever. This alarm
is re-armed for every example, so a slow input fails fast, shrinks in bounded time and is
reported like any other counterexample. pytest-timeout's own alarm is put back afterwards.
(Python runs the handler between bytecodes: a single slow regex call is reported when it
returns, not interrupted.)
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from _pytest.outcomes import Failed


class TooSlow(Failed):
    """The product took longer than the example's time limit.

    A test failure like pytest's own (a BaseException): product code that catches Exception to
    fall back gracefully (the Markdown converters do) must not swallow it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, pytrace=True)


@contextlib.contextmanager
def time_limit(seconds: float, what: str = "the example") -> Iterator[None]:
    """Fail with TooSlow if the block runs longer than ``seconds`` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TooSlow(f"{what} took more than {seconds} s")

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, expired)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:  # re-arm pytest-timeout's alarm with what is left of it
            left = previous_delay - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), previous_interval)
