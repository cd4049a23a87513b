"""Duplicate Slack event deliveries to two replicas behind a round-robin forwarder.

A hundred DM events are each delivered six times with the same event_id: three copies at
once (racing on both replicas), three more later as Slack's retries (`X-Slack-Retry-Num`).
Each event must be answered exactly once and asked of the model exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis

from core.conversation import ConversationKey
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.fakes.fake_slack import SlackSender, wait_until
from tests.integration.slack.conftest import SIGNING_SECRET, StartBot
from tests.support.forwarder import RoundRobinForwarder

EVENTS = 100
COPIES = 6  # 5 duplicates each: 500 in all


@pytest.mark.timeout(90)
async def test_duplicate_slack_events_are_answered_once(
    start_bot: StartBot, redis_url: str
) -> None:
    bots = [await start_bot(), await start_bot()]
    slack = bots[0].slack
    backends = [f"http://127.0.0.1:{b.settings.listen[1]}" for b in bots]
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    async with RoundRobinForwarder(backends) as forwarder:
        sender = SlackSender(slack, f"{forwarder.url}/slack/events", SIGNING_SECRET)
        gate = asyncio.Semaphore(30)

        async def post(body: bytes, retry: int | None) -> None:
            headers = {"Content-Type": "application/json"}
            if retry:
                headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "timeout"}
            async with gate:
                statuses[(await sender.post(body, headers)).status] += 1

        async def deliver(n: int) -> None:
            channel = f"D0DUP{n:03d}"
            event = slack.user_message(channel, f"U0DUP{n:03d}", f"once {n}", channel_type="im")
            body = json.dumps(slack.event_callback(event)).encode()
            await asyncio.gather(*(post(body, retry) for retry in (None, 1, 2)))
            await wait_until(
                lambda: (
                    [m.visible for m in slack.bot_replies(channel, None)] == [echo(f"once {n}")]
                ),
                timeout=60,
            )
            await asyncio.gather(*(post(body, retry) for retry in range(3, COPIES)))

        await asyncio.gather(*(deliver(n) for n in range(EVENTS)))
        hits = forwarder.hits()
    await bots[0].idle()

    assert statuses == Counter({200: EVENTS * COPIES})
    assert sorted(hits) == [0, 1]
    assert len(bots[0].vllm.requests) == EVENTS
    client = aioredis.Redis.from_url(redis_url)
    try:
        for n in range(EVENTS):
            channel = f"D0DUP{n:03d}"
            assert [m.visible for m in slack.bot_replies(channel, None)] == [echo(f"once {n}")]
            key = ConversationKey("slack", channel, f"U0DUP{n:03d}")
            history = await load_history(client, key)
            assert check_history(str(key), history).problems == []
            assert questions(history) == [f"once {n}"]
        assert await lock_keys(client) == []
    finally:
        await client.aclose()
    print(
        f"\nslack duplicates: {EVENTS} events x {COPIES} deliveries "
        f"({EVENTS * (COPIES - 1)} duplicates) over 2 replicas {dict(hits)}: {EVENTS} answers, "
        f"{len(bots[0].vllm.requests)} model requests, {time.monotonic() - started:.1f} s"
    )
