"""A 429 storm from Telegram while twenty users' answers stream.

For three seconds the fake Bot API answers every write to a random half of the chats with
429 `retry_after=1`, again and again. The bot must wait out each retry_after (never earning a
429 of its own, and trying a blocked chat at most once per block), keep reading the model,
and still land every answer whole, once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest
import redis.asyncio as aioredis

from core.conversation import ConversationKey
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.chaos.support import FILLER, quick_thought
from tests.fakes.fake_telegram import FakeTelegram, User
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import BotFactory, idle

USERS = 20
MESSAGES = 3  # per user, one after another
STORM_SECONDS = 3.0


async def converse(telegram: FakeTelegram, user: User) -> list[str]:
    """Send MESSAGES long questions, each after the previous answer landed."""
    asked = []
    for n in range(MESSAGES):
        question = f"question {n} from {user.id} {FILLER}"
        asked.append(question)
        await telegram.private_text(user, question)
        await telegram.wait_for(
            lambda n=n, q=question: (  # type: ignore[misc]
                len(telegram.bot_texts(user.id)) == n + 1
                and telegram.bot_texts(user.id)[n] == echo(q)
            ),
            timeout=60,
            what=f"the answer to question {n} of {user.id}",
        )
    return asked


@pytest.mark.timeout(90)
async def test_a_429_storm_delays_answers_but_loses_nothing(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM, redis: aioredis.Redis
) -> None:
    vllm.token_interval = 0.005
    vllm.responder = quick_thought
    bot = await start_bot(core={"quota_messages_per_minute": 0})
    users = [telegram.new_user(f"U{n}") for n in range(USERS)]
    talks = [asyncio.create_task(converse(telegram, u)) for u in users]
    rng = random.Random(3)
    forced: Counter[int] = Counter()
    started = time.monotonic()
    while time.monotonic() - started < STORM_SECONDS:
        for user in rng.sample(users, USERS // 2):
            telegram.force_retry_after(user.id, 1)
            forced[user.id] += 1
        await asyncio.sleep(0.25)
    asked = await asyncio.gather(*talks)
    await idle(bot, telegram)

    storm_429s = Counter(c.chat_id for c in telegram.errors(code=429) if c.forced)
    assert telegram.flood_errors() == []  # every 429 was the storm's, none earned
    assert sum(storm_429s.values()) > 0
    for user, questions_asked in zip(users, asked, strict=True):
        assert telegram.bot_texts(user.id) == [echo(q) for q in questions_asked]
        # A blocked chat is tried once, then left alone until retry_after has passed.
        assert storm_429s[user.id] <= forced[user.id] + 1, (storm_429s[user.id], forced[user.id])
        key = ConversationKey("telegram", str(user.id), str(user.id))
        history = await load_history(redis, key)
        assert check_history(str(key), history).problems == []
        assert questions(history) == questions_asked
    assert await lock_keys(redis) == []
    print(
        f"\ntelegram 429 storm: {sum(forced.values())} forced blocks over {STORM_SECONDS:.0f} s, "
        f"{sum(storm_429s.values())} writes answered 429, 0 earned; {USERS * MESSAGES} answers "
        f"landed whole in {time.monotonic() - started:.1f} s"
    )
