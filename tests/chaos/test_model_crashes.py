"""The model server killed mid-stream 50 times, with the real composition root.

Each round two users' answers are streaming when the vLLM-compatible server is killed (every
connection cut, no `[DONE]`) and started again on the same port. The cut turns must end with
what was shown plus a clear error and leave history untouched; the next message in the same
conversation must be answered and stored whole.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import Runtime, open_runtime
from core.conversation import ConversationKey, IncomingMessage
from core.errors import LLMUnavailable
from core.results import Outcome, TurnResult
from core.settings import CoreSettings
from core.sink import SegmentKind, SinkLimits
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.chaos.support import FILLER, quick_thought
from tests.fakes.fake_vllm import FakeVLLM
from tests.services import RedisServer
from tests.support.sinks import RecordingSink
from tests.support.timing import patient

KILLS = 50
USERS = 2  # streams cut by every kill


@pytest_asyncio.fixture
async def model() -> AsyncIterator[FakeVLLM]:
    """A fake vLLM streaming a token every 3 ms."""
    fake = FakeVLLM(max_model_len=32768, token_interval=0.003, responder=quick_thought)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def runtime(
    model: FakeVLLM, redis_server: RedisServer, redis_client: aioredis.Redis
) -> AsyncIterator[Runtime]:
    """The real runtime (Redis store, turn leases, openai client) with default retries."""
    settings = CoreSettings(
        _env_file=None,
        llm_base_url=model.base_url,
        redis_url=redis_server.url,
        quota_messages_per_minute=0,
        lock_lease_seconds=3,
        llm_first_token_timeout=5,
        llm_idle_timeout=5,
    )
    async with open_runtime(settings) as built:
        yield built


def sink() -> RecordingSink:
    """A platform-like sink pacing one write per 20 ms."""
    return RecordingSink(SinkLimits(max_length=4000, min_interval=0.02))


def shows_answer(out: RecordingSink) -> bool:
    """Part of the answer is visible."""
    return any(s.kind is SegmentKind.ANSWER for c in out.shown.values() for s in c)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (for up to patient(timeout) s)."""
    deadline = time.monotonic() + patient(timeout)
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


@pytest.mark.timeout(90)
async def test_model_server_killed_mid_stream_50_times(
    model: FakeVLLM, runtime: Runtime, redis_client: aioredis.Redis
) -> None:
    service = runtime.service
    keys = [ConversationKey("telegram", str(900 + n), str(900 + n)) for n in range(USERS)]
    unavailable = LLMUnavailable.user_message
    cut_streams = 0
    started = time.monotonic()
    for round_ in range(KILLS):
        sinks = [sink() for _ in keys]
        asked = [f"round {round_} user {n} {FILLER}" for n in range(USERS)]
        turns = [
            asyncio.create_task(service.handle(IncomingMessage(k, q, user_id=k.user), s))
            for k, q, s in zip(keys, asked, sinks, strict=True)
        ]
        await until(lambda sinks=sinks: all(shows_answer(s) for s in sinks))  # type: ignore[misc]
        await model.stop()  # every in-flight stream is cut, like a killed server
        results: list[TurnResult] = await asyncio.gather(*turns)
        await model.restart()
        for result, out, question in zip(results, sinks, asked, strict=True):
            assert result.outcome is Outcome.FAILED, result
            assert isinstance(result.error, LLMUnavailable)
            assert not result.saved
            (shown,) = out.texts()  # one message: what streamed, then the clear error
            answer, _, notice = shown.rpartition("\n\n")
            assert notice == unavailable
            assert echo(question).startswith(answer)
            assert answer != echo(question)
            cut_streams += 1

        follow = [f"after kill {round_} user {n}" for n in range(USERS)]
        outs = [sink() for _ in keys]
        answered = await asyncio.gather(
            *(
                service.handle(IncomingMessage(k, q, user_id=k.user), s)
                for k, q, s in zip(keys, follow, outs, strict=True)
            )
        )
        for result, out, question in zip(answered, outs, follow, strict=True):
            assert (result.outcome, result.saved) == (Outcome.ANSWERED, True), result
            assert out.texts() == [echo(question)]

    assert cut_streams == KILLS * USERS
    assert model.killed >= KILLS * USERS
    for key in keys:
        history = await load_history(redis_client, key)
        report = check_history(str(key), history)
        assert report.problems == []
        # Only the answered follow-ups are stored: no cut turn, none half-saved.
        n = int(key.user) - 900
        assert questions(history) == [f"after kill {r} user {n}" for r in range(KILLS)]
    assert await lock_keys(redis_client) == []
    print(
        f"\nmodel kills: {KILLS} server kills cut {cut_streams} streams mid-answer in "
        f"{time.monotonic() - started:.1f} s; every cut turn showed its partial answer and "
        f"{unavailable!r}; {KILLS * USERS} follow-ups answered and stored"
    )
