"""Redis Sentinel failovers in the middle of 50 streaming conversations, at the core.

Fifty users talk to the real composition root (``open_runtime`` with REDIS_SENTINELS, leased
turns, quotas, the openai client against a fake vLLM that streams slowly) through platform-like
sinks, one message after another, while the Sentinel set fails over: once by
``SENTINEL FAILOVER`` (the old master stays writable for about ten seconds until Sentinel
reconfigures it) and once by SIGKILL of the primary. Every message must be answered or told a
clear error; history on the new master must hold every turn reported saved exactly once, whole
(no lost turn, no duplicate, nothing interleaved), and nothing of a turn told "not saved".

Smaller scenes pin the mechanisms down: a save on a Sentinel master is on the replica when
``append`` returns; a save written to a deposed master (one Sentinel could not reconfigure) is
not reported saved, and the retry lands it on the new master, once; READONLY from a replica is
a StoreError (a blip to retry), and a pooled connection to a demoted master is left for the new
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import Runtime, open_redis, open_runtime
from core.conversation import ConversationKey, IncomingMessage, Role, StoredMessage, Turn
from core.errors import StoreError
from core.phrases import Phrases
from core.results import Outcome
from core.retry import BLIP
from core.settings import CoreSettings
from core.sink import SinkLimits
from core.store.keys import KeySpace
from core.store.redis_store import NotReplicated, RedisConversationStore
from tests.chaos.invariants import Talk, check_history, echo, load_history, lock_keys, questions
from tests.chaos.support import quick_thought
from tests.fakes.fake_vllm import FakeVLLM
from tests.support.sentinel import SentinelSet, sentinel_set
from tests.support.sinks import RecordingSink
from tests.support.timing import eventually

# Real processes, so bounded like every chaos test; each stays well inside the bound.
pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]
USERS = 50
NOT_SAVED = Phrases().not_saved
ADA = ConversationKey("slack", "D0SENT", "ada")


@pytest.fixture
def sentinels() -> Iterator[SentinelSet]:
    """A Sentinel set of the test's own: it fails over."""
    with sentinel_set() as cluster:
        yield cluster


def core_settings(cluster: SentinelSet, fake: FakeVLLM) -> CoreSettings:
    """The bots' settings for this set (quotas stay on: they use Redis too)."""
    return CoreSettings(
        _env_file=None,
        llm_base_url=fake.base_url,
        redis_sentinels=cluster.addresses,
        quota_messages_per_minute=60_000,
        lock_lease_seconds=5,
        redis_timeout=1.0,
        shutdown_grace_seconds=2,
    )


@pytest_asyncio.fixture
async def runtime(sentinels: SentinelSet) -> AsyncIterator[Runtime]:
    """The real runtime on the Sentinel set, with a model that streams slowly."""
    fake = FakeVLLM(max_model_len=32768, token_interval=0.02, responder=quick_thought)
    await fake.start()
    try:
        async with open_runtime(core_settings(sentinels, fake)) as built:
            yield built
    finally:
        await fake.stop()


async def talk(built: Runtime, talk: Talk, calm: asyncio.Event) -> None:
    """One message after another (a short pause after an error, as a person would take),
    until one is answered and stored after the failover."""
    while True:
        after_chaos = calm.is_set()
        question = f"message {len(talk.asked)} from {talk.key.user}"
        talk.asked.append(question)
        out = RecordingSink(SinkLimits(max_length=4000, min_interval=0.02))
        message = IncomingMessage(talk.key, question, user_id=talk.key.user)
        result = await asyncio.wait_for(built.service.handle(message, out), 60)
        talk.outcomes.append((result.outcome, result.saved))
        talk.seen.append(out.texts())
        if after_chaos and result.saved:
            return
        if not result.saved:
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("how", ["sentinel failover", "primary killed"])
async def test_failover_during_50_streaming_conversations(
    runtime: Runtime, sentinels: SentinelSet, how: str
) -> None:
    talks = [Talk(ConversationKey("slack", "D0SENT", f"U{n:03d}")) for n in range(USERS)]
    calm = asyncio.Event()
    users = [asyncio.create_task(talk(runtime, t, calm)) for t in talks]
    try:
        await asyncio.sleep(1.5)  # every user is mid-conversation
        started = time.monotonic()
        force = sentinels.failover if how == "sentinel failover" else sentinels.kill_primary
        old = await asyncio.to_thread(force)
        new = await asyncio.to_thread(sentinels.wait_new_master, old)
        promoted = time.monotonic() - started
        if how == "sentinel failover":
            # Replies go on while the old master still takes writes, until Sentinel demotes it
            # (and cuts its clients off): whatever was saved there only is lost then.
            await asyncio.to_thread(sentinels.wait_demoted, old)
        else:
            await asyncio.sleep(1.5)  # replies go on against the new master
        calm.set()
        # Each user ends with a turn answered and stored after the failover.
        await asyncio.gather(*users)
    finally:
        for user in users:
            user.cancel()
        await asyncio.gather(*users, return_exceptions=True)
    recovered = time.monotonic() - started

    kinds: Counter[str] = Counter()
    # Read the new master itself: the bots' own pool may still hold a connection to the old
    # one, whose writes after the failover do not survive.
    redis = aioredis.Redis(port=new)
    try:
        await check_talks(redis, talks, kinds)
        # Leases whose release the failover swallowed run out by themselves.
        await eventually(lambda: _no_locks(redis), timeout=15, what="every turn lease released")
    finally:
        await redis.aclose()
    assert kinds["answered"] >= USERS
    print(
        f"\nsentinel ({how}): new master named {promoted:.1f} s after the failover began, all "
        f"users answered and stored {recovered:.1f} s after it; "
        f"{sum(kinds.values())} messages: {dict(kinds)}"
    )


async def check_talks(redis: aioredis.Redis, talks: list[Talk], kinds: Counter[str]) -> None:
    """No lost turn, no duplicate, nothing interleaved; every failure told as one."""
    for t in talks:
        history = await load_history(redis, t.key)
        assert check_history(str(t.key), history).problems == []  # nothing half or interleaved
        stored = questions(history)
        assert len(stored) == len(set(stored)), f"a turn saved twice: {stored}"
        for question, seen, (outcome, saved) in zip(t.asked, t.seen, t.outcomes, strict=True):
            assert len(seen) == 1, seen  # what the user saw: one message, answer or error
            if outcome is Outcome.ANSWERED and saved:
                kinds["answered"] += 1
                assert seen == [echo(question)]
                assert stored.count(question) == 1, f"lost: {question!r} reported saved"
            elif outcome is Outcome.ANSWERED:
                kinds["answered, not saved"] += 1
                assert seen == [f"{echo(question)}\n\n{NOT_SAVED}"]
                assert question not in stored
            elif outcome is Outcome.STOPPED:
                # The lease could not be renewed through the failover: the turn stopped rather
                # than risk two writers; what was shown is kept only if it could still be saved.
                kinds["stopped, lease lost"] += 1
                if not saved:
                    assert seen[0].endswith(NOT_SAVED), seen
                assert stored.count(question) == (1 if saved else 0)
            else:
                kinds["store error"] += 1
                assert (outcome, seen) == (Outcome.FAILED, [StoreError.user_message])
                assert question not in stored


async def _no_locks(redis: aioredis.Redis) -> bool:
    """No turn lease is held."""
    return await lock_keys(redis) == []


# -- the mechanisms, one at a time --------------------------------------------------------------


def one_turn(n: int) -> Turn:
    """A recognisable turn."""
    return Turn(
        StoredMessage(Role.USER, f"question {n}", 3, float(n)),
        StoredMessage(Role.ASSISTANT, f"answer {n}", 4, float(n)),
    )


@contextlib.asynccontextmanager
async def sentinel_store(cluster: SentinelSet) -> AsyncIterator[RedisConversationStore]:
    """The store on the client the bots build for REDIS_SENTINELS."""
    settings = CoreSettings(_env_file=None, redis_sentinels=cluster.addresses, redis_timeout=1.0)
    async with open_redis(settings) as (client, _):
        yield RedisConversationStore(client)


async def test_a_save_is_on_the_replica_when_it_returns(sentinels: SentinelSet) -> None:
    master = sentinels.master_port()
    (replica,) = (n for n in sentinels.data if n.port != master)
    direct = aioredis.Redis(port=replica.port)
    try:
        async with sentinel_store(sentinels) as store:
            for n in range(20):
                await store.append(ADA, one_turn(n))
                # No waiting: the save returned, so the replica (a failover's next master) has it.
                assert await direct.llen(KeySpace().history(ADA)) == 2 * (n + 1)
    finally:
        await direct.aclose()


async def test_a_save_on_a_deposed_master_is_not_reported_saved() -> None:
    # Sentinel cannot reconfigure this primary (REPLICAOF disabled), so after the failover it
    # stays a writable master for as long as the test needs: the split brain, held still.
    with sentinel_set(stubborn_primary=True) as cluster:
        async with sentinel_store(cluster) as store:
            await store.append(ADA, one_turn(1))  # leaves a pooled connection to the primary
            old = await asyncio.to_thread(cluster.failover)
            new = await asyncio.to_thread(cluster.wait_new_master, old)
            with pytest.raises(NotReplicated):  # written on the old master: not confirmed
                await store.append(ADA, one_turn(2))
            # The answerer's blip retry (core.answer) finds the new master.
            second = one_turn(2)  # one turn, one id: a retried save stores it once
            await BLIP.run(lambda: store.append(ADA, second), retry_on=(StoreError,), what="a save")
            await store.append(ADA, one_turn(3))
        on_new = aioredis.Redis(port=new)
        try:
            history = await load_history(on_new, ADA)
        finally:
            await on_new.aclose()
    assert [m.content for m in history if m.role is Role.USER] == [
        "question 1", "question 2", "question 3",
    ]  # fmt: skip


async def test_readonly_from_a_replica_is_a_store_error_the_blip_retry_rides_out(
    sentinels: SentinelSet,
) -> None:
    master = sentinels.master_port()
    (replica,) = (n for n in sentinels.data if n.port != master)
    direct = aioredis.Redis(port=replica.port)  # e.g. a REDIS_URL whose DNS still names it
    try:
        with pytest.raises(StoreError, match="read only replica"):
            await RedisConversationStore(direct).append(ADA, one_turn(1))
    finally:
        await direct.aclose()


async def test_a_demoted_master_is_left_for_the_new_one_without_an_error() -> None:
    with sentinel_set() as cluster:
        async with sentinel_store(cluster) as store:
            await store.append(ADA, one_turn(1))  # a pooled connection to the primary
            old = await asyncio.to_thread(cluster.failover)
            new = await asyncio.to_thread(cluster.wait_new_master, old)
            await asyncio.to_thread(cluster.wait_demoted, old)
            # The pooled connection now reaches a replica: READONLY, which redis-py turns into a
            # reconnect through the sentinels, or a closed connection; either way the retry
            # (as in core.answer) lands the save on the new master.
            second = one_turn(2)  # one turn, one id: a retried save stores it once
            await BLIP.run(lambda: store.append(ADA, second), retry_on=(StoreError,), what="a save")
        on_new = aioredis.Redis(port=new)
        try:
            history = await load_history(on_new, ADA)
        finally:
            await on_new.aclose()
    assert [m.content for m in history if m.role is Role.USER] == ["question 1", "question 2"]
