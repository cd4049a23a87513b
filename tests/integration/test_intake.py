"""Bounded intake: a flood from one person costs a few queued turns, one notice, flat memory."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import Runtime, open_runtime
from bots.telegram.app import PHRASES
from core.conversation import ConversationKey, IncomingMessage
from core.results import Outcome, TurnResult
from core.settings import CoreSettings
from core.sink import SinkLimits
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.fakes.fixtures import FakeVLLMFactory
from tests.services import RedisServer
from tests.support.sinks import RecordingSink

RuntimeFactory = Callable[..., AbstractAsyncContextManager[Runtime]]
ADA = ConversationKey("telegram", "c1", "ada")


@pytest_asyncio.fixture
async def runtime_for(redis_server: RedisServer, redis_client: aioredis.Redis) -> RuntimeFactory:
    """Runtimes from the real composition root against the session's Redis."""

    def build(fake: FakeVLLM, **overrides: Any) -> AbstractAsyncContextManager[Runtime]:
        settings = CoreSettings(
            _env_file=None,
            llm_base_url=fake.base_url,
            redis_url=redis_server.url,
            llm_retries=0,
            **overrides,
        )
        return open_runtime(settings, phrases=PHRASES)

    return build


def sink() -> RecordingSink:
    """A fast sink that records what the person would see."""
    return RecordingSink(SinkLimits(max_length=4000, min_interval=0.001))


async def flood(rt: Runtime, count: int, sinks: list[RecordingSink]) -> list[TurnResult]:
    """``count`` messages from one person at once, each handled in its own task (as adapters do)."""
    tasks = []
    for n in range(count):
        out = sink()
        sinks.append(out)
        message = IncomingMessage(ADA, f"message {n}", "ada", message_id=str(n))
        tasks.append(asyncio.create_task(rt.service.handle(message, out)))
    return await asyncio.gather(*tasks)


async def test_a_flood_queues_a_few_turns_and_tells_the_person_once(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.002)
    fake.script(*(Reply("thinking", f"answer {n}") for n in range(10)))
    sinks: list[RecordingSink] = []
    async with runtime_for(fake, quota_messages_per_minute=0) as rt:
        results = await flood(rt, 1000, sinks)
        assert len(rt.service.runner.intake) == 0  # nothing is left waiting
        history = await rt.service.runner.store.load(ADA)
    outcomes = [r.outcome for r in results]
    assert outcomes.count(Outcome.ANSWERED) == 4  # one running and three waiting in line
    assert outcomes.count(Outcome.BUSY) == 996
    assert len(fake.requests) == 4
    # Answered in arrival order: the first four messages, each once.
    assert [m.content for m in history[::2]] == [f"message {n}" for n in range(4)]
    notices = [t for out in sinks for t in out.texts() if "still answering" in t]
    assert len(notices) == 1  # one notice a minute, not 996


async def test_refused_messages_are_checked_before_waiting_for_the_turn(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.01)
    fake.script(Reply("r", "long " * 200))
    sinks: list[RecordingSink] = []
    async with runtime_for(fake, quota_messages_per_minute=1) as rt:
        first = asyncio.create_task(rt.service.handle(IncomingMessage(ADA, "go", "ada"), sink()))
        while not fake.requests:
            await asyncio.sleep(0.01)
        # While a reply runs: three find room in line and are over the quota, the rest find
        # the line full; all are turned away at once, none waits for the running turn.
        results = await flood(rt, 20, sinks)
        outcomes = [r.outcome for r in results]
        assert outcomes.count(Outcome.REFUSED) == 3
        assert outcomes.count(Outcome.BUSY) == 17
        assert not first.done()
        assert (await first).outcome is Outcome.ANSWERED
    told = [t for out in sinks for t in out.texts()]
    assert len([t for t in told if "reached your limit" in t]) == 1
    assert len([t for t in told if "still answering" in t]) == 1
    assert len(fake.requests) == 1


async def test_memory_stays_flat_when_one_person_sends_a_thousand_messages(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.002)
    fake.script(*(Reply("r", "ok") for _ in range(100)))

    async def thousand(rt: Runtime) -> None:
        outcomes = [r.outcome for r in await flood(rt, 1000, [])]
        assert outcomes.count(Outcome.BUSY) >= 996

    async with runtime_for(fake, quota_messages_per_minute=0) as rt:
        await thousand(rt)  # warm up: caches, pools, code paths
        tracemalloc.start()
        try:
            await thousand(rt)
            gc.collect()
            after_one, _ = tracemalloc.get_traced_memory()
            for _ in range(3):
                await thousand(rt)
            gc.collect()
            after_four, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(rt.service.runner.intake) == 0
    # Three more floods of a thousand leave nothing per message behind (a waiting turn alone
    # would cost kilobytes each): growth is noise, not 3,000 x anything.
    assert after_four - after_one < 256 * 1024, f"{after_four - after_one} bytes more"
