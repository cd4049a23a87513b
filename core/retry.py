"""One retry policy for transient failures (Redis blips, start-up calls); tests switch sleeping off.

Every place that retries takes a ``RetryPolicy`` from the composition root instead of keeping its
own schedule, so "how long do we ride out a blip" is answered here once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff

T = TypeVar("T")
log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# What a failure says about retrying it: the seconds it asks us to wait at least (a 429's
# Retry-After, waited out when longer than the scheduled delay; 0.0 when it says nothing), or
# None when it is permanent (401, 403, 400) and is raised at once.
Advice = Callable[[BaseException], float | None]


async def _no_sleep(_: float) -> None:
    """Tests: retry at once."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Seconds to wait before each further attempt; ``delays=()`` means one attempt only."""

    delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    sleep: Sleep = field(default=asyncio.sleep, compare=False)

    def schedule(self) -> Iterator[float | None]:
        """The wait before each retry, then None: no attempt is left."""
        yield from self.delays
        yield None

    async def run(
        self,
        work: Callable[[], Awaitable[T]],
        *,
        retry_on: tuple[type[BaseException], ...],
        what: str,
        give_up: Callable[[], bool] = lambda: False,
        advice: Advice | None = None,
    ) -> T:
        """``work()``, again after each delay while it raises ``retry_on`` and ``advice`` agrees."""
        for delay in self.schedule():
            try:
                return await work()
            except retry_on as exc:
                asked = 0.0 if advice is None else advice(exc)
                if delay is None or asked is None or give_up():
                    raise
                if asked > sum(self.delays):  # longer than the whole schedule: not sat through
                    log.warning("%s failed, asked to wait %g s: not retrying: %s", what, asked, exc)
                    raise
                wait = max(delay, asked)
                log.warning("%s failed, retrying in %g s: %s", what, wait, exc)
                await self.sleep(wait)
        raise AssertionError("unreachable: the schedule ends with None")  # pragma: no cover

    def at_most(self, retries: int) -> RetryPolicy:
        """The same schedule cut to ``retries`` further attempts (LLM_RETRIES)."""
        return replace(self, delays=self.delays[: max(0, retries)])

    def settling(self) -> RetryPolicy:
        """Longer, for writes that end a turn after its reply was shown (save, running mark).

        Waiting costs nobody a visible delay there, and it must outlast a whole Sentinel
        failover: the old master keeps taking writes for about 10 s before it is demoted.
        """
        return replace(self, delays=(*self.delays, 4.0, 8.0)) if self.delays else self

    def without_sleep(self) -> RetryPolicy:
        """The same number of attempts, none of the waiting (tests)."""
        return replace(self, sleep=_no_sleep)


# A Redis restart or failover of a second or two, and a lost reply to a write: about 4 s in all.
BLIP = RetryPolicy((0.25, 0.5, 1.0, 2.0))
# Start-up calls to a platform (setMyCommands, setWebhook, auth.test) that met a 429 or a 5xx,
# likely when several replicas start at once: about half a minute in all.
STARTUP = RetryPolicy((1.0, 2.0, 4.0, 8.0, 15.0))
# No retries at all (tests that want the first failure).
OFF = RetryPolicy(())


def redis_command_retry() -> RedisRetry:
    """redis-py's own per-command retry on a dropped connection: quick, a reconnect and no more.

    The blip schedule above rides out longer outages at the level of whole operations (a turn, a
    save); this only hides a connection the server closed a moment ago.
    """
    return RedisRetry(ExponentialBackoff(cap=0.5, base=0.05), 2)
