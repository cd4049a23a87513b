"""A turn that lost its lease while answering cannot save, through the real composition root.

The store contract (test_conversation_store.py) checks the fence itself; here a real turn
(``open_runtime`` on the session's redis-server and on a Redis Cluster, a fake vLLM streaming
slowly) stalls past its lease while another replica takes the conversation: the stalled turn's
answer is shown with the "couldn't save" notice, its save is refused once and never retried,
and the other turn's save lands.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bots.runtime import Runtime, open_runtime
from core.conversation import ConversationKey, IncomingMessage, Role, StoredMessage, Turn
from core.phrases import Phrases
from core.results import Outcome
from core.retry import RetryPolicy
from core.settings import CoreSettings
from core.sink import SinkLimits
from core.store.redis_store import RedisConversationStore
from core.turns import TurnCoordinator
from tests.chaos.invariants import echo
from tests.chaos.support import quick_thought
from tests.fakes.fixtures import FakeVLLMFactory
from tests.services import RedisServer
from tests.support.messengers import STORES, store_settings
from tests.support.sinks import RecordingSink
from tests.support.timing import eventually

ADA = ConversationKey("slack", "D0FENCE", "ada")


class Sleeps:
    """A retry sleep that records each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        """Record instead of sleeping."""
        self.waits.append(seconds)


@pytest_asyncio.fixture(params=STORES)
async def runtime(
    request: pytest.FixtureRequest, redis_server: RedisServer, fake_vllm_factory: FakeVLLMFactory
) -> AsyncIterator[tuple[Runtime, Sleeps]]:
    """The real runtime on the session's Redis or a Cluster; its blip retry records instead of
    sleeping."""
    fake = await fake_vllm_factory(token_interval=0.05, responder=quick_thought)
    sleeps = Sleeps()
    where = {"redis_url": redis_server.url, **store_settings(request, request.param)}
    settings = CoreSettings(_env_file=None, llm_base_url=fake.base_url, llm_retries=0, **where)
    async with open_runtime(settings, retry=RetryPolicy(sleep=sleeps)) as built:
        await built.redis.flushall()
        yield built, sleeps


async def test_a_turn_that_lost_its_lease_is_shown_but_not_saved(
    runtime: tuple[Runtime, Sleeps],
) -> None:
    built, sleeps = runtime
    out = RecordingSink(SinkLimits(max_length=4000, min_interval=0.02))
    question = "what is a fencing token?"
    answering = asyncio.create_task(
        built.service.handle(IncomingMessage(ADA, question, user_id="ada"), out)
    )
    await eventually(lambda: any("You said" in t for t in out.texts()), what="the answer begins")

    # A Redis stall outlives the lease (its key runs out) and another replica takes the turn.
    await built.redis.delete(built.keys.lock(ADA))
    other = TurnCoordinator(built.redis, keys=built.keys)
    async with other.turn(ADA, wait=False) as lease:
        result = await asyncio.wait_for(answering, 30)
        store = RedisConversationStore(built.redis, keys=built.keys)
        later = Turn(
            StoredMessage(Role.USER, "and now?", 3, 1.0),
            StoredMessage(Role.ASSISTANT, "the other turn's answer", 4, 1.0),
        )
        await store.append(ADA, later, fence=lease.fence)

    assert (result.outcome, result.saved) == (Outcome.ANSWERED, False)
    assert out.texts() == [f"{echo(question)}\n\n{Phrases().not_saved}"]
    assert sleeps.waits == []  # refused by the fence: final, not a blip to retry
    history = await RedisConversationStore(built.redis, keys=built.keys).load(ADA)
    assert [m.content for m in history] == ["and now?", "the other turn's answer"]
