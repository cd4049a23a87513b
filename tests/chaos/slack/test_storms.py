"""A 429 storm from Slack while twenty DMs stream their answers.

For three seconds the fake Web API answers `chat.update` and `chat.postMessage` with 429
`ratelimited` (and a Retry-After) in repeated bursts. Every 429 must fall inside a burst the
test forced — the bot earns none by writing too fast — and every answer must still land whole,
exactly once.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from core.conversation import ConversationKey
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.chaos.support import FILLER, quick_thought
from tests.fakes.fake_slack import wait_until
from tests.integration.slack.conftest import RunningBot, StartBot

USERS = 20
MESSAGES = 3
STORM_SECONDS = 3.0


async def converse(bot: RunningBot, n: int) -> list[str]:
    """A DM conversation: MESSAGES long questions, each after the previous answer."""
    channel, user = f"D0STORM{n:02d}", f"U0STORM{n:02d}"
    asked = []
    for i in range(MESSAGES):
        question = f"question {i} from {user} {FILLER[:80]}"
        asked.append(question)
        await bot.dm(user, question, channel=channel)
        await wait_until(
            lambda i=i, q=question: (
                [  # type: ignore[misc]
                    m.visible for m in bot.slack.bot_replies(channel, None)
                ][i : i + 1]
                == [echo(q)]
            ),
            timeout=60,
        )
    return asked


@pytest.mark.timeout(90)
async def test_a_429_storm_from_slack_loses_nothing(start_bot: StartBot, redis_url: str) -> None:
    # 7 chat.update per second against the fake's 12: room for this loaded event loop's jitter,
    # so any 429 outside the forced bursts would be the bot's own fault.
    bot = await start_bot(slack_updates_per_minute=420)
    bot.vllm.token_interval = 0.005
    bot.vllm.responder = quick_thought
    talks = [asyncio.create_task(converse(bot, n)) for n in range(USERS)]
    windows: list[tuple[str, float, float]] = []
    started = time.monotonic()
    burst = 0
    while time.monotonic() - started < STORM_SECONDS:
        method, seconds = ("chat.update", 0.6) if burst % 2 == 0 else ("chat.postMessage", 0.3)
        now = time.monotonic()
        bot.slack.force_ratelimit(method, seconds)
        windows.append((method, now, now + seconds))
        burst += 1
        await asyncio.sleep(0.3)
    asked = await asyncio.gather(*talks)
    await bot.idle()

    limited = [c for c in bot.slack.calls if c.status == 429]
    earned = [
        (c.method, round(c.at - started, 3))
        for c in limited
        if not any(m == c.method and start <= c.at < end for m, start, end in windows)
    ]
    assert earned == []  # every 429 fell inside a burst the test forced
    assert limited
    client = aioredis.Redis.from_url(redis_url)
    try:
        for n, questions_asked in enumerate(asked):
            channel = f"D0STORM{n:02d}"
            shown = [m.visible for m in bot.slack.bot_replies(channel, None)]
            assert shown == [echo(q) for q in questions_asked]
            key = ConversationKey("slack", channel, f"U0STORM{n:02d}")
            history = await load_history(client, key)
            assert check_history(str(key), history).problems == []
            assert questions(history) == questions_asked
        assert await lock_keys(client) == []
    finally:
        await client.aclose()
    print(
        f"\nslack 429 storm: {len(windows)} forced bursts over {STORM_SECONDS:.0f} s, "
        f"{len(limited)} calls answered 429, 0 earned; {USERS * MESSAGES} answers landed whole "
        f"in {time.monotonic() - started:.1f} s"
    )
