"""1,000 duplicate webhook deliveries to two Telegram replicas behind a round-robin forwarder.

Two hundred updates are each delivered six times: three copies at the same moment (they race
on two replicas), three more after the answer is already visible (late redeliveries, as when
Telegram retries after a timeout). Each update must be answered exactly once and asked of the
model exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis

from core.conversation import ConversationKey
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import BotFactory, idle
from tests.services import free_port
from tests.support.forwarder import RoundRobinForwarder

UPDATES = 200
COPIES = 6  # 5 duplicates each: 1,000 in all
SECRET = "chaos-duplicates-secret"


@pytest.mark.timeout(90)
async def test_1000_duplicate_deliveries_are_answered_once(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM, redis: aioredis.Redis
) -> None:
    ports = [free_port() for _ in range(2)]
    bots = [
        await start_bot(
            core={"quota_messages_per_minute": 0},
            tg={
                "telegram_webhook_url": f"http://127.0.0.1:{port}/hook",
                "telegram_webhook_secret": SECRET,
                "telegram_webhook_listen": f"127.0.0.1:{port}",
            },
        )
        for port in ports
    ]
    statuses: Counter[int] = Counter()
    users = [telegram.new_user(f"U{n}") for n in range(UPDATES)]
    updates = []
    for n, user in enumerate(users):
        message = telegram.message(telegram.private_chat(user), user, f"only once {n}")
        updates.append({"update_id": 700_000 + n, "message": message.to_dict()})
    started = time.monotonic()
    async with (
        RoundRobinForwarder([f"http://127.0.0.1:{p}" for p in ports]) as forwarder,
        aiohttp.ClientSession() as session,
    ):
        gate = asyncio.Semaphore(50)

        async def post(update: dict[str, Any]) -> None:
            headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
            async with (
                gate,
                session.post(f"{forwarder.url}/hook", json=update, headers=headers) as r,
            ):
                await r.read()
                statuses[r.status] += 1

        async def deliver(n: int, update: dict[str, Any]) -> None:
            await asyncio.gather(*(post(update) for _ in range(3)))  # racing copies
            await telegram.wait_for(
                lambda: telegram.bot_texts(users[n].id) == [echo(f"only once {n}")],
                timeout=60,
                what=f"the answer to update {n}",
            )
            await asyncio.gather(*(post(update) for _ in range(COPIES - 3)))  # late copies

        await asyncio.gather(*(deliver(n, u) for n, u in enumerate(updates)))
        hits = forwarder.hits()
    for bot in bots:
        await idle(bot, telegram)

    assert statuses == Counter({200: UPDATES * COPIES})
    assert sorted(hits) == [0, 1]
    assert len(vllm.requests) == UPDATES  # the model was asked once per update
    for n, user in enumerate(users):
        assert telegram.bot_texts(user.id) == [echo(f"only once {n}")]
        key = ConversationKey("telegram", str(user.id), str(user.id))
        history = await load_history(redis, key)
        assert check_history(str(key), history).problems == []
        assert questions(history) == [f"only once {n}"]
    assert await lock_keys(redis) == []
    print(
        f"\ntelegram duplicates: {UPDATES} updates x {COPIES} deliveries "
        f"({UPDATES * (COPIES - 1)} duplicates) over 2 replicas {dict(hits)}: "
        f"{UPDATES} answers, {len(vllm.requests)} model requests, "
        f"{time.monotonic() - started:.1f} s"
    )
