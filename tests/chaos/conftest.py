"""Every chaos test ends with the same check: no unhandled exception reached the logs.

Records are captured at WARNING and above; anything carrying a traceback, or asyncio's
"Task exception was never retrieved", fails the test (see invariants.unhandled_logged).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.chaos.invariants import unhandled_logged
from tests.chaos.support import own_redis

__all__ = ["no_unhandled_exceptions", "own_redis"]


@pytest.fixture(autouse=True)
def no_unhandled_exceptions(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if any log record shows an unhandled exception."""
    caplog.set_level(logging.WARNING)
    yield
    problems = unhandled_logged(caplog)
    assert problems == [], "\n".join(problems)
