"""Send/edit budgets on virtual time: spacing, order, 429 penalties, bursts."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from core.pacing import CompositePacer, IntervalPacer, TokenBucketPacer
from core.sink import Pacer

pytestmark = pytest.mark.looptime

EPS = 1e-9


def now() -> float:
    """Virtual time."""
    return asyncio.get_running_loop().time()


async def writers(pacer: Pacer, count: int) -> list[tuple[float, int]]:
    """``count`` concurrent writers, started in order; when each got its turn."""
    done: list[tuple[float, int]] = []

    async def write(index: int) -> None:
        await pacer.acquire()
        done.append((now(), index))

    tasks = []
    for index in range(count):
        tasks.append(asyncio.create_task(write(index)))
        await asyncio.sleep(0)  # arrival order is creation order
    await asyncio.gather(*tasks)
    return done


def gaps(times: list[float]) -> list[float]:
    """Time between consecutive writes."""
    return [b - a for a, b in itertools.pairwise(times)]


# -- IntervalPacer ---------------------------------------------------------------------------------


async def test_interval_first_write_is_immediate_then_spaced() -> None:
    pacer = IntervalPacer(1.5)
    start = now()
    done = await writers(pacer, 5)
    assert [t - start for t, _ in done] == pytest.approx([0, 1.5, 3.0, 4.5, 6.0])


async def test_interval_serves_waiters_in_arrival_order() -> None:
    done = await writers(IntervalPacer(1.0), 8)
    assert [index for _, index in done] == list(range(8))


async def test_interval_after_a_quiet_period_writes_at_once() -> None:
    pacer = IntervalPacer(1.0)
    await pacer.acquire()
    await asyncio.sleep(10)
    start = now()
    await pacer.acquire()
    assert now() == pytest.approx(start)


async def test_interval_penalize_blocks_for_retry_after() -> None:
    pacer = IntervalPacer(1.0)
    await pacer.acquire()
    pacer.penalize(30)
    start = now()
    await pacer.acquire()
    assert now() - start >= 30 - EPS
    await pacer.acquire()
    assert now() - start >= 31 - EPS  # spacing resumes after the penalty


async def test_interval_penalize_holds_back_writers_already_waiting() -> None:
    pacer = IntervalPacer(1.0)
    await pacer.acquire()  # t=0: a write; three more writers queue for t=1, 2, 3
    tasks = [asyncio.create_task(pacer.acquire()) for _ in range(3)]
    await asyncio.sleep(0.5)
    pacer.penalize(20)  # the write at t=0 was answered with a 429
    times: list[float] = []
    for task in tasks:
        await task
        times.append(now())
    assert all(t >= 20.5 - EPS for t in times), times
    assert all(g >= 1.0 - EPS for g in gaps(sorted(times)))


async def test_interval_penalize_never_shortens_a_longer_wait() -> None:
    pacer = IntervalPacer(1.0)
    pacer.penalize(30)
    pacer.penalize(5)
    start = now()
    await pacer.acquire()
    assert now() - start >= 30 - EPS


async def test_interval_zero_never_waits() -> None:
    pacer = IntervalPacer(0.0)
    start = now()
    await writers(pacer, 50)
    assert now() == start


# -- TokenBucketPacer ------------------------------------------------------------------------------


async def test_bucket_allows_a_burst_then_the_rate() -> None:
    pacer = TokenBucketPacer(rate=20 / 60, burst=20)  # Telegram groups: 20 per minute
    start = now()
    done = await writers(pacer, 30)
    times = [t - start for t, _ in done]
    assert times[:20] == pytest.approx([0.0] * 20)
    assert gaps(times[19:]) == pytest.approx([3.0] * 10)
    assert [index for _, index in done] == list(range(30))


async def test_bucket_never_exceeds_the_rate_over_a_window() -> None:
    pacer = TokenBucketPacer(rate=1.0, burst=5)
    start = now()
    done = await writers(pacer, 40)
    times = [t - start for t, _ in done]
    for t in times:  # in any window of w seconds: at most burst + w * rate writes
        window = [u for u in times if t <= u < t + 10]
        assert len(window) <= 5 + 10


async def test_bucket_refills_while_idle_up_to_the_burst() -> None:
    pacer = TokenBucketPacer(rate=1.0, burst=3)
    await writers(pacer, 3)
    await asyncio.sleep(100)
    start = now()
    done = await writers(pacer, 5)
    times = [t - start for t, _ in done]
    assert times == pytest.approx([0, 0, 0, 1, 2])


async def test_bucket_penalize_blocks_for_retry_after() -> None:
    pacer = TokenBucketPacer(rate=10.0, burst=10)
    await pacer.acquire()
    pacer.penalize(15)
    start = now()
    await pacer.acquire()
    assert now() - start >= 15 - EPS


async def test_bucket_penalize_empties_the_bucket() -> None:
    pacer = TokenBucketPacer(rate=1.0, burst=5)
    await writers(pacer, 5)  # t=0: empty
    await asyncio.sleep(4)  # four tokens' worth of time passes unused…
    pacer.penalize(2)  # …then a 429: the bucket is empty as of now
    start = now()
    done = await writers(pacer, 4)
    times = [t - start for t, _ in done]
    assert times[0] >= 2 - EPS
    # Only what refilled since the penalty may go at once: 2 s at 1/s.
    assert sum(1 for t in times if t <= 2 + EPS) <= 2


async def test_bucket_penalize_holds_back_writers_already_waiting() -> None:
    pacer = TokenBucketPacer(rate=1.0, burst=1)
    await pacer.acquire()
    tasks = [asyncio.create_task(pacer.acquire()) for _ in range(3)]
    await asyncio.sleep(0.5)
    pacer.penalize(10)
    times: list[float] = []
    for task in tasks:
        await task
        times.append(now())
    assert min(times) >= 10.5 - EPS


# -- CompositePacer --------------------------------------------------------------------------------


async def test_composite_obeys_every_budget() -> None:
    per_chat = IntervalPacer(1.0)
    per_group = TokenBucketPacer(rate=20 / 60, burst=5)
    pacer = CompositePacer(per_chat, per_group)
    start = now()
    done = await writers(pacer, 12)
    times = [t - start for t, _ in done]
    assert times[:5] == pytest.approx([0, 1, 2, 3, 4])  # the burst, at the chat's pace
    assert all(g >= 1.0 - EPS for g in gaps(times))
    for t in times:  # never more than the burst plus the rate in any 30 s
        assert len([u for u in times if t <= u < t + 30]) <= 5 + 10


async def test_composite_penalize_reaches_every_budget() -> None:
    first, second = IntervalPacer(0.0), TokenBucketPacer(rate=100.0, burst=100)
    start = now()
    CompositePacer(first, second).penalize(12)

    async def waited(pacer: Pacer) -> float:
        await pacer.acquire()
        return now() - start

    assert await asyncio.gather(waited(first), waited(second)) == pytest.approx([12, 12])


async def test_composite_penalize_blocks_its_own_acquire() -> None:
    pacer = CompositePacer(IntervalPacer(1.0), TokenBucketPacer(rate=5.0, burst=5))
    await pacer.acquire()
    pacer.penalize(8)
    start = now()
    await pacer.acquire()
    assert now() - start >= 8 - EPS


async def test_composite_of_nothing_never_waits() -> None:
    pacer = CompositePacer()
    start = now()
    await pacer.acquire()
    pacer.penalize(10)
    await pacer.acquire()
    assert now() == start


# -- clocks with a resolution ----------------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("interval", [0.05, 0.1, 1 / 3, 0.7])
async def test_interval_with_inexact_float_slots_never_spins(interval: float) -> None:
    """Slots like 0.15000000000000002 on a clock with a resolution must still be reached."""
    pacer = IntervalPacer(interval)
    start = now()
    done = await writers(pacer, 40)
    times = [t - start for t, _ in done]
    assert times[-1] == pytest.approx(39 * interval, abs=1e-3)
    assert all(g >= interval - 2e-6 for g in gaps(times))  # a late tick, then an exact slot


@pytest.mark.timeout(10)
@pytest.mark.parametrize("rate", [3.0, 7.0, 20 / 60, 0.3])
async def test_bucket_with_inexact_float_refills_never_spins(rate: float) -> None:
    pacer = TokenBucketPacer(rate=rate, burst=2)
    start = now()
    done = await writers(pacer, 30)
    times = [t - start for t, _ in done]
    assert times[-1] == pytest.approx(28 / rate, abs=1e-3)
    pacer.penalize(0.1 / rate)
    await pacer.acquire()
    assert now() - start >= 28 / rate + 0.1 / rate - 1e-6
