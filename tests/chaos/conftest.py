"""Every chaos test ends with the same check: no unhandled exception of the bot's was logged.

Records are captured at WARNING and above; a record of the bot's carrying a traceback, or
asyncio's "Task exception was never retrieved" for one of its tasks, fails the test. The
fakes' own logs (a client that went away mid-request: the chaos does that) do not count (see
tests.support.logs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.chaos.support import own_redis
from tests.support.logs import assert_nothing_unhandled

__all__ = ["no_unhandled_exceptions", "own_redis"]


@pytest.fixture(autouse=True)
def no_unhandled_exceptions(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if any log record shows an unhandled exception."""
    caplog.set_level(logging.WARNING)
    yield
    assert_nothing_unhandled(caplog)
