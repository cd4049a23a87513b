"""Redis restarted 10 times during traffic, at the core: store, turn leases, quotas, usage.

Twelve users talk to the real ChatService (Redis store, leased turns, the openai client
against a fake vLLM) through platform-like sinks, one message after another, while their
Redis is restarted ten times, keeping its data as a Redis with persistence does. Every
message must be answered or told a clear error; history must hold every answered turn once,
whole, and nothing of a failed one. (The Telegram adapter on top adds Redis-shared pacing:
see tests/chaos/telegram/test_redis_restarts.py.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import Runtime, open_runtime
from core.conversation import ConversationKey, IncomingMessage
from core.errors import StoreError
from core.phrases import Phrases
from core.results import Outcome
from core.settings import CoreSettings
from core.sink import SinkLimits
from tests.chaos.invariants import Talk, check_history, echo, load_history, lock_keys, questions
from tests.chaos.support import restart_keeping_data
from tests.fakes.fake_vllm import FakeVLLM
from tests.services import RedisServer
from tests.support.sinks import RecordingSink

RESTARTS = 10
USERS = 12
NOT_SAVED = Phrases().not_saved


@pytest_asyncio.fixture
async def runtime(own_redis: RedisServer) -> AsyncIterator[tuple[Runtime, FakeVLLM]]:
    """The real runtime on the restartable Redis."""
    fake = FakeVLLM(max_model_len=32768, token_interval=0.003)
    await fake.start()
    settings = CoreSettings(
        _env_file=None,
        llm_base_url=fake.base_url,
        redis_url=own_redis.url,
        quota_messages_per_minute=60_000,  # quotas stay on: they use Redis too
        lock_lease_seconds=3,
        redis_timeout=1.0,
        shutdown_grace_seconds=2,
    )
    try:
        async with open_runtime(settings) as built:
            yield built, fake
    finally:
        await fake.stop()


async def talk(service_runtime: Runtime, talk: Talk, calm: asyncio.Event) -> None:
    """One message after another (a short pause after an error, as a person would take),
    until one is answered and stored after the last restart."""
    service = service_runtime.service
    while True:
        after_chaos = calm.is_set()
        question = f"message {len(talk.asked)} from {talk.key.user}"
        talk.asked.append(question)
        out = RecordingSink(SinkLimits(max_length=4000, min_interval=0.02))
        message = IncomingMessage(talk.key, question, user_id=talk.key.user)
        result = await asyncio.wait_for(service.handle(message, out), 30)
        talk.outcomes.append((result.outcome, result.saved))
        talk.seen.append(out.texts())
        if after_chaos and result.saved:
            return
        if not result.saved:
            await asyncio.sleep(0.05)


@pytest.mark.timeout(90)
async def test_redis_restarted_10_times_under_the_chat_service(
    runtime: tuple[Runtime, FakeVLLM], own_redis: RedisServer
) -> None:
    built, _ = runtime
    talks = [Talk(ConversationKey("slack", "D0CHAOS", f"U{n:03d}")) for n in range(USERS)]
    calm = asyncio.Event()
    users = [asyncio.create_task(talk(built, t, calm)) for t in talks]
    downtime = []
    started = time.monotonic()
    for _ in range(RESTARTS):
        await asyncio.sleep(0.4)
        downtime.append(await asyncio.to_thread(restart_keeping_data, own_redis))
    calm.set()
    chaos = time.monotonic() - started
    await asyncio.gather(*users)  # each ends with a turn answered and stored after the chaos
    recovered = time.monotonic() - started - chaos

    kinds: Counter[str] = Counter()
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        for t in talks:
            history = await load_history(client, t.key)
            assert check_history(str(t.key), history).problems == []
            stored = questions(history)
            for question, seen, (outcome, saved) in zip(t.asked, t.seen, t.outcomes, strict=True):
                # What the user saw: exactly one message, the answer or a clear error.
                assert len(seen) == 1, seen
                if outcome is Outcome.ANSWERED and saved:
                    kinds["answered"] += 1
                    assert seen == [echo(question)]
                    assert stored.count(question) == 1
                elif outcome is Outcome.ANSWERED:
                    kinds["answered, not saved"] += 1
                    assert seen == [f"{echo(question)}\n\n{NOT_SAVED}"]
                    assert question not in stored
                else:
                    kinds["store error"] += 1
                    assert (outcome, seen) == (Outcome.FAILED, [StoreError.user_message])
                    assert question not in stored
            assert len(stored) == len(set(stored))
        assert await lock_keys(client) == []
    finally:
        await client.aclose()
    assert kinds["answered"] >= USERS
    print(
        f"\nredis restarts (core): {RESTARTS} restarts (down {min(downtime):.2f}-"
        f"{max(downtime):.2f} s) in {chaos:.1f} s, all users answered again "
        f"{recovered:.1f} s later; {sum(kinds.values())} messages: {dict(kinds)}"
    )
