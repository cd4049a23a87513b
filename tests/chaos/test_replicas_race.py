"""Replicas racing for one conversation.

Four replicas — four runtimes with their own Redis connections and turn coordinators, so
only the Redis lease stands between them, as between processes — get messages of the same
conversation at the same moment. Under `queue` every turn must run alone: the fake model
sees each request with one more earlier turn than the last (0, 1, 2, … — never two turns on
the same history). Under `interrupt` a long answer running on one replica is stopped by
messages arriving on the others; under `reject` they are told the conversation is busy. Each
message gets exactly one clear outcome and history holds only whole turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import Runtime, open_runtime
from core.conversation import ConversationKey, IncomingMessage
from core.phrases import Phrases
from core.results import Outcome, TurnResult
from core.settings import BusyPolicy, CoreSettings
from core.sink import SinkLimits
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.chaos.support import quick_thought
from tests.fakes.fake_vllm import FakeVLLM
from tests.services import RedisServer
from tests.support.sinks import RecordingSink
from tests.support.timing import patient

REPLICAS = 4
KEY = ConversationKey("slack", "D0RACE", "U0RACE")
PHRASES = Phrases()

Replicas = Callable[[BusyPolicy], contextlib.AbstractAsyncContextManager[list[Runtime]]]


@pytest_asyncio.fixture
async def model() -> AsyncIterator[FakeVLLM]:
    """The default echo responder; its reasoning says how many earlier turns it was sent."""
    fake = FakeVLLM(max_model_len=32768, token_interval=0.002)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def replicas(model: FakeVLLM, redis_server: RedisServer, redis_client: aioredis.Redis) -> Replicas:
    """Four runtimes on one Redis, as four bot processes would be."""

    @contextlib.asynccontextmanager
    async def start(policy: BusyPolicy) -> AsyncIterator[list[Runtime]]:
        settings = CoreSettings(
            _env_file=None,
            llm_base_url=model.base_url,
            redis_url=redis_server.url,
            busy_policy=policy,
            max_queued_per_conversation=20,  # every racer waits its turn (the line is tested apart)
            quota_messages_per_minute=0,
            lock_lease_seconds=3,
        )
        async with contextlib.AsyncExitStack() as stack:
            yield [await stack.enter_async_context(open_runtime(settings)) for _ in range(REPLICAS)]

    return start


def sink() -> RecordingSink:
    """A platform-like sink."""
    return RecordingSink(SinkLimits(max_length=4000, min_interval=0.02))


async def race(runtimes: list[Runtime], asked: list[str]) -> list[tuple[TurnResult, list[str]]]:
    """Every message at once, spread over the replicas in turn."""
    outs = [sink() for _ in asked]
    results = await asyncio.gather(
        *(
            runtimes[n % REPLICAS].service.handle(IncomingMessage(KEY, q, user_id=KEY.user), out)
            for n, (q, out) in enumerate(zip(asked, outs, strict=True))
        )
    )
    return [(r, out.texts()) for r, out in zip(results, outs, strict=True)]


@pytest.mark.timeout(60)
async def test_queued_turns_racing_on_four_replicas_run_one_at_a_time(
    replicas: Replicas, model: FakeVLLM, redis_client: aioredis.Redis
) -> None:
    asked = [f"race {n}" for n in range(40)]
    started = time.monotonic()
    async with replicas(BusyPolicy.QUEUE) as runtimes:
        outcomes = await race(runtimes, asked)
    for question, (result, seen) in zip(asked, outcomes, strict=True):
        assert (result.outcome, result.saved) == (Outcome.ANSWERED, True)
        assert seen == [echo(question)]
    # Each request carried all earlier turns: 0, 1, …, 39 — no two turns on one history.
    earlier = sorted(sum(m["role"] == "user" for m in r["messages"]) - 1 for r in model.requests)
    assert earlier == list(range(len(asked)))
    history = await load_history(redis_client, KEY)
    assert check_history(str(KEY), history).problems == []
    assert sorted(questions(history)) == sorted(asked)
    assert await lock_keys(redis_client) == []
    in_order = questions(history) == asked
    print(
        f"\nreplicas race (queue): {len(asked)} messages of one conversation over {REPLICAS} "
        f"replicas at once, answered one at a time in {time.monotonic() - started:.1f} s "
        f"(in arrival order: {in_order})"
    )


@pytest.mark.parametrize("policy", [BusyPolicy.INTERRUPT, BusyPolicy.REJECT])
@pytest.mark.timeout(60)
async def test_replicas_racing_into_a_running_turn(
    policy: BusyPolicy, replicas: Replicas, model: FakeVLLM, redis_client: aioredis.Redis
) -> None:
    """A long answer streams on replica 0; eleven messages race in on all four replicas."""
    model.token_interval = 0.004
    model.responder = quick_thought
    long_question = "long " + " ".join(f"word{i}" for i in range(200))
    asked = [f"race {n}" for n in range(11)]
    busy = PHRASES.busy.format(stop_hint=PHRASES.stop_hint)
    async with replicas(policy) as runtimes:
        first_out = sink()
        first = asyncio.create_task(
            runtimes[0].service.handle(
                IncomingMessage(KEY, long_question, user_id=KEY.user), first_out
            )
        )
        deadline = time.monotonic() + patient(10)
        while not any("word" in text for text in first_out.texts()):
            assert time.monotonic() < deadline, "the long answer never started"
            await asyncio.sleep(0.005)
        outcomes = await race(runtimes, asked)
        first_result = await first
        # Once the race is over, the conversation is free again on any replica.
        (after,) = await race(runtimes[1:2], ["after the race"])

    (first_seen,) = first_out.texts()
    if policy is BusyPolicy.INTERRUPT:
        # Stopped from other replicas through Redis; what was shown stays, with the reason.
        assert first_result.outcome is Outcome.INTERRUPTED
        assert first_seen.endswith(PHRASES.interrupted)
        assert echo(long_question).startswith(first_seen.removesuffix(PHRASES.interrupted).strip())
    else:
        assert first_result.outcome is Outcome.ANSWERED
        assert first_seen == echo(long_question)
    kinds: Counter[str] = Counter()
    for question, (result, seen) in zip(asked, outcomes, strict=True):
        kinds[result.outcome.value] += 1
        if result.outcome is Outcome.BUSY:
            assert seen in ([busy], []), seen  # the busy note, given once a minute at most
            continue
        assert len(seen) == 1, seen  # one reply per message
        if result.outcome is Outcome.ANSWERED:
            assert seen == [echo(question)]
        elif result.outcome is Outcome.INTERRUPTED:
            assert seen[0].endswith(PHRASES.interrupted)
            assert echo(question).startswith(seen[0].removesuffix(PHRASES.interrupted).strip())
        else:
            raise AssertionError(f"unexpected {result.outcome} under {policy}: {seen}")
    if policy is BusyPolicy.REJECT:
        assert kinds == Counter({Outcome.BUSY.value: len(asked)})
        assert sum(seen == [busy] for _, seen in outcomes) == 1  # told once, on any replica
    assert after[0].outcome is Outcome.ANSWERED
    history = await load_history(redis_client, KEY)
    report = check_history(str(KEY), history, answer_ok=lambda q, a: echo(q).startswith(a))
    assert report.problems == []
    stored = questions(history)
    assert len(stored) == len(set(stored))
    assert stored[0] == long_question
    assert stored[-1] == "after the race"
    for question, (result, _) in zip(asked, outcomes, strict=True):
        assert (question in stored) == result.saved
    assert await lock_keys(redis_client) == []
    print(
        f"\nreplicas race ({policy}): a long answer on replica 0 → {first_result.outcome}; "
        f"11 messages racing in over {REPLICAS} replicas → {dict(kinds)}"
    )
