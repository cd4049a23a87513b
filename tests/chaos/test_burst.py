"""A burst: 400 conversations start on one process at the same moment.

Each turn holds a Redis connection only for a command at a time, but 400 turns starting
together put hundreds of commands in flight at once (leases, stop checks, history, quotas,
usage). Every user must be answered and every turn stored: nothing may fail with "Too many
connections" (redis-py 8's default pool of 100 raised instead of waiting until the runtime
switched to a bounded blocking pool; a replica with a few hundred turns in flight failed them).
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
from core.results import Outcome
from core.settings import CoreSettings
from core.sink import SinkLimits
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.fakes.fake_vllm import FakeVLLM
from tests.services import RedisServer
from tests.support.sinks import RecordingSink

CONVERSATIONS = 400


@pytest_asyncio.fixture
async def runtime(
    redis_server: RedisServer, redis_client: aioredis.Redis
) -> AsyncIterator[Runtime]:
    """The real runtime with its default Redis pool, quotas on."""
    fake = FakeVLLM(max_model_len=32768, token_interval=0.002)
    await fake.start()
    settings = CoreSettings(
        _env_file=None,
        llm_base_url=fake.base_url,
        redis_url=redis_server.url,
        quota_messages_per_minute=1000,
    )
    try:
        async with open_runtime(settings) as built:
            yield built
    finally:
        await fake.stop()


@pytest.mark.timeout(90)
async def test_400_conversations_start_at_once_on_one_process(
    runtime: Runtime, redis_client: aioredis.Redis
) -> None:
    keys = [ConversationKey("telegram", str(5000 + n), str(5000 + n)) for n in range(CONVERSATIONS)]
    outs = [RecordingSink(SinkLimits(max_length=4000, min_interval=0.05)) for _ in keys]
    started = time.monotonic()
    results = await asyncio.gather(
        *(
            runtime.service.handle(IncomingMessage(k, f"burst {k.user}", user_id=k.user), out)
            for k, out in zip(keys, outs, strict=True)
        )
    )
    elapsed = time.monotonic() - started
    outcomes = Counter((r.outcome, r.saved) for r in results)
    assert outcomes == Counter({(Outcome.ANSWERED, True): CONVERSATIONS})
    for key, out in zip(keys, outs, strict=True):
        assert out.texts() == [echo(f"burst {key.user}")]
        history = await load_history(redis_client, key)
        assert check_history(str(key), history).problems == []
        assert questions(history) == [f"burst {key.user}"]
    assert await lock_keys(redis_client) == []
    print(
        f"\nburst: {CONVERSATIONS} conversations at once on one process, "
        f"answered in {elapsed:.1f} s"
    )
