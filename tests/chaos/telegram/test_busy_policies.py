"""Twenty messages at once from one user, under each BUSY_POLICY.

queue:     all twenty answered, in order, each stored once.
interrupt: each message gets one reply, either its whole answer or what was written of it
           with "stopped to answer your new message"; the last is answered; only whole turns
           (a question and what was shown of its answer) are stored.
reject:    the first is answered; the busy note is given once (once a minute at most) and
           nothing is stored for the others.

The line behind a running answer is made long enough for all twenty here
(MAX_QUEUED_PER_CONVERSATION); the default short line is tested in tests/integration/test_intake.py.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from bots.telegram.app import PHRASES
from core.conversation import ConversationKey
from core.settings import BusyPolicy
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.chaos.support import FILLER, quick_thought
from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import BotFactory, idle

MESSAGES = 20
BUSY = PHRASES.busy.format(stop_hint=PHRASES.stop_hint)


@pytest.mark.parametrize("policy", list(BusyPolicy))
@pytest.mark.timeout(90)
async def test_twenty_messages_at_once_from_one_user(
    policy: BusyPolicy,
    start_bot: BotFactory,
    telegram: FakeTelegram,
    vllm: FakeVLLM,
    redis: aioredis.Redis,
) -> None:
    vllm.token_interval = 0.004
    vllm.responder = quick_thought
    bot = await start_bot(
        core={
            "busy_policy": policy,
            "quota_messages_per_minute": 0,
            "max_queued_per_conversation": MESSAGES,
        }
    )
    alice = telegram.new_user("Alice")
    asked = [f"message {n} {FILLER[:60]}" for n in range(MESSAGES)]
    await asyncio.gather(*(telegram.private_text(alice, q) for q in asked))
    await telegram.wait_for(
        lambda: len(telegram.bot_texts(alice.id)) >= MESSAGES or policy is BusyPolicy.REJECT,
        timeout=60,
        what="a reply to every message",
    )
    await idle(bot, telegram, timeout=60)
    shown = telegram.bot_texts(alice.id)
    key = ConversationKey("telegram", str(alice.id), str(alice.id))
    history = await load_history(redis, key)
    assert await lock_keys(redis) == []
    assert len(vllm.requests) <= MESSAGES

    if policy is BusyPolicy.QUEUE:
        assert shown == [echo(q) for q in asked]
        assert check_history(str(key), history).problems == []
        assert questions(history) == asked
    elif policy is BusyPolicy.REJECT:
        answered = [t for t in shown if t != BUSY]
        assert answered == [echo(asked[0])]  # the first holds the turn, the rest are refused
        assert shown.count(BUSY) == 1  # and hear it once, not nineteen times
        assert check_history(str(key), history).problems == []
        assert questions(history) == asked[:1]
    else:
        assert len(shown) == MESSAGES  # one reply per message, in order
        for question, text in zip(asked, shown, strict=True):
            if text != echo(question):  # stopped: what was shown of its answer, and why
                assert text.endswith(PHRASES.interrupted), text
                assert echo(question).startswith(text.removesuffix(PHRASES.interrupted).strip())
        assert shown[-1] == echo(asked[-1])
        report = check_history(
            str(key), history, answer_ok=lambda q, a: echo(q).startswith(a) and bool(a)
        )
        assert report.problems == []
        assert questions(history) == [q for q in asked if q in questions(history)]  # in order
        assert asked[-1] in questions(history)
    print(
        f"\nbusy policy {policy}: {MESSAGES} messages at once → "
        f"{sum(echo(q) in shown for q in asked)} answered in full, "
        f"{sum(PHRASES.interrupted in t for t in shown)} interrupted, {shown.count(BUSY)} busy; "
        f"{len(history) // 2} turns stored"
    )
