"""Budgets shared through a real Redis by several replicas, each with its own connection."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator

import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot

from bots.slack.pacing import Budget, BudgetRates, Budgets
from bots.telegram.pacing import Pacers
from core.pacing import RedisBudgetPacer, RedisWindowPacer, Spacing, Window
from core.store.keys import KeySpace
from tests.services import RedisServer, free_port

REPLICAS = 3
# Seconds between Redis admitting a write and the test stamping it; more on a loaded machine.
JITTER = 0.1


@pytest_asyncio.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[aioredis.Redis]]:
    """One Redis connection per replica, on an emptied server."""
    connections = [aioredis.Redis.from_url(redis_server.url) for _ in range(REPLICAS)]
    await connections[0].flushall()
    try:
        yield connections
    finally:
        for connection in connections:
            await connection.aclose()


def most_in_any_window(stamps: list[float], window: float) -> int:
    """The most stamps that fall in any window of ``window`` seconds."""
    ordered = sorted(stamps)
    return max(
        bisect.bisect_left(ordered, start + window) - index for index, start in enumerate(ordered)
    )


async def test_the_window_caps_what_is_sent_across_replicas(
    clients: list[aioredis.Redis],
) -> None:
    pacers = [RedisWindowPacer(client, "pace:sent", 10, 0.5) for client in clients]
    loop = asyncio.get_running_loop()
    stamps: list[float] = []

    async def write(pacer: RedisWindowPacer) -> None:
        await pacer.acquire()
        stamps.append(loop.time())

    started = loop.time()
    await asyncio.gather(*(write(pacers[i % REPLICAS]) for i in range(45)))
    assert most_in_any_window(stamps, 0.5 - JITTER) <= 10
    # The budget is used, not starved: 2.25 s of writes, generously bounded for a busy machine.
    assert max(stamps) - started < 2 * (45 / 10 * 0.5) + 1.0


async def test_pacing_goes_on_locally_when_redis_is_unreachable() -> None:
    client = aioredis.Redis(
        port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    pacer = RedisWindowPacer(client, "pace:sent", 2, 0.6)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    try:
        for _ in range(4):
            await pacer.acquire()
            stamps.append(loop.time())
    finally:
        await client.aclose()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) > 0.3 - JITTER  # one write per window/limit, as the budget allows


class CountingRedis:
    """A replica's connection that counts its round trips."""

    def __init__(self, inner: aioredis.Redis) -> None:
        self.inner = inner
        self.calls = 0

    async def eval(self, script: str, numkeys: int, *keys_and_args: str) -> object:
        """Count, then run the script."""
        self.calls += 1
        return await self.inner.eval(script, numkeys, *keys_and_args)


def telegram_budgets(client: aioredis.Redis | CountingRedis, chat_interval: float) -> Pacers:
    """The adapter's budgets on one replica's connection (30 writes per second bot-wide)."""
    return Pacers.on_redis(
        client,  # type: ignore[arg-type]
        keys=KeySpace(),
        bot_id=42,
        chat_interval=chat_interval,
        group_per_minute=600,
    )


async def test_a_reply_under_every_budget_asks_redis_once_per_write(
    clients: list[aioredis.Redis],
) -> None:
    counting = CountingRedis(clients[0])
    pacer = telegram_budgets(counting, 0.1).for_chat(7, private=True)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    for _ in range(8):
        await pacer.acquire()
        stamps.append(loop.time())
    assert counting.calls == 8  # chat spacing, bot slot and bot window in one script
    assert min(b - a for a, b in itertools.pairwise(stamps)) > 0.1 - JITTER


async def test_one_chat_is_spaced_across_replicas_by_the_combined_budget(
    clients: list[aioredis.Redis],
) -> None:
    pacers = [telegram_budgets(client, 0.3).for_chat(-100, private=True) for client in clients]
    loop = asyncio.get_running_loop()
    stamps: list[float] = []

    async def write(pacer: object) -> None:
        assert isinstance(pacer, RedisBudgetPacer)
        await pacer.acquire()
        stamps.append(loop.time())

    await asyncio.gather(*(write(pacers[i % REPLICAS]) for i in range(8)))
    gaps = [b - a for a, b in itertools.pairwise(sorted(stamps))]
    assert min(gaps) > 0.3 - JITTER
    assert max(stamps) - min(stamps) < 8 * 0.3 + 1.0


async def test_the_combined_budget_meets_the_window_through_a_stall(
    clients: list[aioredis.Redis],
) -> None:
    """Many chats at once and the process stalling while they wait for their slots: the slots
    that fell due meanwhile meet the bot-wide window when they wake, not all at once."""
    keys = KeySpace()
    stamps: list[float] = []
    loop = asyncio.get_running_loop()

    def pacer(client: aioredis.Redis, chat: int) -> RedisBudgetPacer:
        return RedisBudgetPacer(
            client,
            [Spacing(keys.budget("tgpace", "9", "chat", str(chat)), 1.0)],
            queue=Spacing(keys.budget("tgpace", "9", "bot"), 0.05),
            window=Window(keys.budget("tgpace", "9", "sent"), 20, 1.0),
        )

    async def write(index: int) -> None:
        await pacer(clients[index % REPLICAS], index).acquire()
        stamps.append(loop.time())  # sent: nothing awaits between admission and here

    async def stall() -> None:
        await asyncio.sleep(0.5)  # writers hold queue slots up to 3 s ahead by now
        time.sleep(0.5)  # the whole process stalls: slots fall due meanwhile

    await asyncio.gather(stall(), *(write(i) for i in range(60)))
    assert most_in_any_window(stamps, 1.0 - JITTER) <= 20


async def test_a_429_holds_back_the_chat_on_every_replica(clients: list[aioredis.Redis]) -> None:
    first, second = (telegram_budgets(c, 0.05).for_chat(5, private=True) for c in clients[:2])
    loop = asyncio.get_running_loop()
    await first.acquire()
    first.penalize(0.6)
    await asyncio.sleep(0.05)  # the push-back is sent without waiting for it
    started = loop.time()
    await second.acquire()
    assert loop.time() - started > 0.6 - 0.05 - JITTER


def test_every_budget_of_a_bot_is_on_one_cluster_slot() -> None:
    keys = KeySpace()
    names = [
        keys.budget("tgpace", "42", "chat", "-1001"),
        keys.budget("tgpace", "42", "bot"),
        keys.budget("tgpace", "42", "sent"),
    ]
    assert len({key_slot(name.encode()) for name in names}) == 1


async def test_the_combined_budget_paces_locally_when_redis_is_unreachable() -> None:
    client = aioredis.Redis(
        port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    pacer = telegram_budgets(client, 0.3).for_chat(1, private=True)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    try:
        for _ in range(3):
            await pacer.acquire()
            stamps.append(loop.time())
    finally:
        await client.aclose()
    assert min(b - a for a, b in itertools.pairwise(stamps)) > 0.3 - JITTER


async def test_a_slack_reply_takes_its_channel_and_workspace_in_one_round_trip(
    clients: list[aioredis.Redis],
) -> None:
    counting = CountingRedis(clients[0])
    budgets = Budgets.on_redis(counting, BudgetRates(0.1, 0.05, 0.1), KeySpace())  # type: ignore[arg-type]
    pacer = budgets.for_reply("T1", "C1", Budget.UPDATE)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    for _ in range(6):
        await pacer.acquire()
        stamps.append(loop.time())
    assert counting.calls == 6
    assert min(b - a for a, b in itertools.pairwise(stamps)) > 0.1 - JITTER


async def test_a_slack_workspace_is_shared_by_its_channels_across_replicas(
    clients: list[aioredis.Redis],
) -> None:
    rates = BudgetRates(0.2, 0.1, 0.05)
    replicas = [Budgets.on_redis(client, rates, KeySpace()) for client in clients]
    loop = asyncio.get_running_loop()
    stamps: list[float] = []

    async def write(index: int) -> None:
        pacer = replicas[index % REPLICAS].for_reply("T1", f"C{index}", Budget.UPDATE)
        await pacer.acquire()
        stamps.append(loop.time())

    await asyncio.gather(*(write(i) for i in range(6)))
    gaps = [b - a for a, b in itertools.pairwise(sorted(stamps))]
    assert min(gaps) > 0.2 - JITTER  # one chat.update per interval for the whole workspace
