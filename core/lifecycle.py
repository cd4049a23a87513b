"""Graceful shutdown: stop taking turns, let running ones finish, then end them with a note."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from core.turns import TurnCoordinator

log = logging.getLogger(__name__)


class Lifecycle:
    """Counts turns in flight; after ``shutdown`` admission refuses new ones."""

    def __init__(self, turns: TurnCoordinator) -> None:
        self._turns = turns
        self._accepting = True
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def accepting(self) -> bool:
        """False once shutdown began."""
        return self._accepting

    @property
    def in_flight(self) -> int:
        """Turns admitted and not yet ended."""
        return self._in_flight

    @contextlib.contextmanager
    def tracking(self) -> Iterator[None]:
        """Hold the shutdown open while one turn runs."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def shutdown(self, grace_seconds: float) -> None:
        """Take no new turns; let replies finish within the grace period, then end them."""
        self._accepting = False
        if self._in_flight == 0:
            return
        try:
            async with asyncio.timeout(grace_seconds):
                await self._idle.wait()
            return
        except TimeoutError:
            log.warning(
                "%d replies still running after %.0f s; ending them", self._in_flight, grace_seconds
            )
        for lease in self._turns.leases():
            lease.request_stop("shutdown")
        try:
            async with asyncio.timeout(10):
                await self._idle.wait()
        except TimeoutError:
            log.error("replies did not end after being stopped")
