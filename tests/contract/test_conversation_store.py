"""One ConversationStore contract, run against the in-memory store, fakeredis, a real Redis,
a real Redis Sentinel set (primary, replica, three sentinels) and a real three-primary Redis
Cluster, the last two reached as the bots reach them.

Saves are fenced by the turn lease: for the Redis backends the leases come from the real
``TurnCoordinator`` (two of them, as two replicas), for the in-memory store from its stand-in.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import fakeredis
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import open_redis, redis_options
from core.conversation import ConversationKey, Role, StoredMessage, Turn
from core.errors import LeaseLost, StoreError
from core.settings import CoreSettings
from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.memory import InMemoryConversationStore
from core.store.protocol import ConversationStore
from core.store.redis_store import RedisConversationStore
from core.turns import TurnCoordinator
from tests.services import RedisServer, free_port
from tests.support.cluster import RedisClusterSet
from tests.support.sentinel import SentinelSet
from tests.support.timing import patient

CAP = 6
TTL = 3600


def turn(n: int, tokens: int = 3) -> Turn:
    """A recognisable turn."""
    return Turn(
        StoredMessage(Role.USER, f"question {n}", tokens, float(n)),
        StoredMessage(Role.ASSISTANT, f"answer {n}", tokens + 1, float(n)),
    )


ADA = ConversationKey("telegram", "100", "ada")
ADA_GROUP = ConversationKey("telegram", "-500", "ada")
ADA_TOPIC = ConversationKey("telegram", "-500", "ada", thread="7")
BOB_GROUP = ConversationKey("telegram", "-500", "bob")
ADA_SLACK = ConversationKey("slack", "C1", "ada", thread="171.5")
ODD = ConversationKey("slack", "C|*{x}", "u:*?[1]", thread="a b")


Lease = Callable[[ConversationKey], contextlib.AbstractAsyncContextManager[str]]


@dataclass
class Backend:
    """A store, and what fencing needs around it: turn leases and their running out."""

    store: ConversationStore
    lease: Lease  # a turn's lease, as another replica would take it; yields its fencing token
    expire: Callable[[ConversationKey], Awaitable[None]]  # the lease ran out (a Redis stall)


def memory_backend() -> Backend:
    """The in-memory store; its grants stand in for the turn coordinator's."""
    memory = InMemoryConversationStore(max_messages=CAP, ttl_seconds=TTL)

    @contextlib.asynccontextmanager
    async def lease(key: ConversationKey) -> AsyncIterator[str]:
        """A new grant outdates every earlier one."""
        yield memory.grant(key)

    async def expire(_: ConversationKey) -> None:
        """Nothing holds a lock here: only grants count."""

    return Backend(memory, lease, expire)


def redis_backend(client: RedisClient) -> Backend:
    """The Redis store with real turn leases; each lease comes from another coordinator."""
    keys = KeySpace()

    @contextlib.asynccontextmanager
    async def lease(key: ConversationKey) -> AsyncIterator[str]:
        """A turn on a fresh coordinator (another replica), not waiting for a held lease."""
        async with TurnCoordinator(client, keys=keys).turn(key, wait=False) as held:
            assert held.fence is not None
            yield held.fence

    async def expire(key: ConversationKey) -> None:
        """The lease's TTL ran out while the turn was stalled."""
        await client.delete(keys.lock(key))

    return Backend(RedisConversationStore(client, max_messages=CAP, ttl_seconds=TTL), lease, expire)


@pytest_asyncio.fixture(params=["memory", "fakeredis", "redis", "sentinel", "cluster"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """The same contract over every backend."""
    if request.param == "memory":
        yield memory_backend()
        return
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "fakeredis":
            client: RedisClient = fakeredis.FakeAsyncRedis()
            stack.push_async_callback(client.aclose)
        elif request.param == "redis":
            server: RedisServer = request.getfixturevalue("redis_server")
            client = aioredis.Redis.from_url(server.url)
            stack.push_async_callback(client.aclose)
        elif request.param == "sentinel":
            sentinels: SentinelSet = request.getfixturevalue("sentinels")
            settings = CoreSettings(_env_file=None, redis_sentinels=sentinels.addresses)
            client, _ = await stack.enter_async_context(open_redis(settings))
        else:
            cluster: RedisClusterSet = request.getfixturevalue("cluster")
            settings = CoreSettings(_env_file=None, redis_url=cluster.url, redis_cluster=True)
            client, _ = await stack.enter_async_context(open_redis(settings))
        await client.flushall()
        yield redis_backend(client)


@pytest.fixture
def store(backend: Backend) -> ConversationStore:
    """The backend's store."""
    return backend.store


async def test_empty_conversation_loads_empty(store: ConversationStore) -> None:
    assert await store.load(ADA) == []


async def test_turns_come_back_in_order_with_counts(store: ConversationStore) -> None:
    await store.append(ADA, turn(1))
    await store.append(ADA, turn(2))
    loaded = await store.load(ADA)
    assert [m.content for m in loaded] == ["question 1", "answer 1", "question 2", "answer 2"]
    assert [m.role for m in loaded] == [Role.USER, Role.ASSISTANT] * 2
    assert [m.tokens for m in loaded] == [3, 4, 3, 4]


async def test_history_is_capped_to_whole_turns(store: ConversationStore) -> None:
    for n in range(10):
        await store.append(ADA, turn(n))
    loaded = await store.load(ADA)
    assert len(loaded) == CAP
    assert loaded[0].role is Role.USER
    assert loaded[0].content == "question 7"
    assert loaded[-1].content == "answer 9"


async def test_replace_last_swaps_only_the_newest_turn(store: ConversationStore) -> None:
    await store.append(ADA, turn(1))
    await store.append(ADA, turn(2))
    await store.replace_last(ADA, turn(3))
    assert [m.content for m in await store.load(ADA)] == [
        "question 1", "answer 1", "question 3", "answer 3",
    ]  # fmt: skip


async def test_saving_the_same_turn_again_stores_it_once(store: ConversationStore) -> None:
    first, second = turn(1), turn(2)
    await store.append(ADA, first)
    await store.append(ADA, first)  # a retry after the store's reply was lost
    await store.append(ADA, second)
    await store.replace_last(ADA, turn(3))
    await store.append(ADA, second)
    assert [m.content for m in await store.load(ADA)] == [
        "question 1", "answer 1", "question 3", "answer 3",
    ]  # fmt: skip


async def test_a_retried_replacement_replaces_once(store: ConversationStore) -> None:
    await store.append(ADA, turn(1))
    await store.append(ADA, turn(2))
    replacement = turn(3)
    await store.replace_last(ADA, replacement)
    await store.replace_last(ADA, replacement)  # must not eat turn 1
    assert [m.content for m in await store.load(ADA)] == [
        "question 1", "answer 1", "question 3", "answer 3",
    ]  # fmt: skip


async def test_conversations_are_separate(store: ConversationStore) -> None:
    for key, n in ((ADA, 1), (ADA_GROUP, 2), (ADA_TOPIC, 3), (BOB_GROUP, 4), (ADA_SLACK, 5)):
        await store.append(key, turn(n))
    assert (await store.load(ADA_TOPIC))[0].content == "question 3"
    assert (await store.load(BOB_GROUP))[0].content == "question 4"
    assert (await store.load(ADA_GROUP))[0].content == "question 2"


async def test_clear_one_conversation(store: ConversationStore) -> None:
    await store.append(ADA, turn(1))
    await store.append(ADA_GROUP, turn(2))
    assert await store.clear(ADA) is True
    assert await store.clear(ADA) is False
    assert await store.load(ADA) == []
    assert len(await store.load(ADA_GROUP)) == 2


async def test_clear_user_removes_all_of_theirs_on_that_platform(store: ConversationStore) -> None:
    for key in (ADA, ADA_GROUP, ADA_TOPIC, BOB_GROUP, ADA_SLACK):
        await store.append(key, turn(1))
    assert await store.clear_user("telegram", "ada") == 3
    assert await store.load(ADA_TOPIC) == []
    assert await store.load(BOB_GROUP) != []
    assert await store.load(ADA_SLACK) != []


async def test_clear_chat_removes_every_member(store: ConversationStore) -> None:
    for key in (ADA, ADA_GROUP, ADA_TOPIC, BOB_GROUP):
        await store.append(key, turn(1))
    assert await store.clear_chat("telegram", "-500") == 3
    assert await store.load(ADA) != []
    assert await store.load(BOB_GROUP) == []


async def test_clear_all_and_stats(store: ConversationStore) -> None:
    for key in (ADA, ADA_GROUP, ADA_SLACK):
        await store.append(key, turn(1))
    await store.append(ADA, turn(2))
    stats = await store.stats()
    assert stats.conversations == 3
    assert stats.messages == 8
    assert stats.by_platform == {"telegram": 2, "slack": 1}
    assert await store.clear_all() == 3
    assert (await store.stats()).conversations == 0


async def test_ids_with_glob_and_separator_characters_stay_exact(store: ConversationStore) -> None:
    lookalike = ConversationKey("slack", "C|x", "u", thread="a b")
    await store.append(ODD, turn(1))
    await store.append(lookalike, turn(2))
    assert await store.clear_user("slack", "u:*?[1]") == 1
    assert await store.load(lookalike) != []
    assert await store.clear_chat("slack", "C|*{x}") == 0


# -- fencing: only the turn holding the conversation's newest lease grant may save ----------


def contents(messages: list[StoredMessage]) -> list[str]:
    """What a history says, in order."""
    return [m.content for m in messages]


async def test_a_turn_whose_lease_was_taken_cannot_save(backend: Backend) -> None:
    store = backend.store
    async with backend.lease(ADA) as first:
        await store.append(ADA, turn(1), fence=first)
        await backend.expire(ADA)  # the first turn stalled past its lease...
        async with backend.lease(ADA) as second:  # ...and another turn took the conversation
            with pytest.raises(LeaseLost):
                await store.append(ADA, turn(2), fence=first)
            with pytest.raises(LeaseLost):
                await store.replace_last(ADA, turn(3), fence=first)
            await store.append(ADA, turn(4), fence=second)
    assert contents(await store.load(ADA)) == ["question 1", "answer 1", "question 4", "answer 4"]


async def test_a_refused_save_stores_nothing_not_even_its_mark(backend: Backend) -> None:
    store, refused = backend.store, turn(2)
    async with backend.lease(ADA) as first:
        await backend.expire(ADA)
        async with backend.lease(ADA) as second:
            with pytest.raises(LeaseLost):
                await store.append(ADA, refused, fence=first)
            assert await store.load(ADA) == []
            await store.append(ADA, refused, fence=second)  # not taken for already saved
    assert contents(await store.load(ADA)) == ["question 2", "answer 2"]


async def test_a_save_retried_after_the_lease_moved_on_stays_saved_once(
    backend: Backend,
) -> None:
    store, saved = backend.store, turn(1)
    async with backend.lease(ADA) as first:
        await store.append(ADA, saved, fence=first)
        await backend.expire(ADA)
        async with backend.lease(ADA) as second:
            await store.append(ADA, saved, fence=first)  # the first reply was lost: no error
            await store.append(ADA, turn(2), fence=second)
    assert contents(await store.load(ADA)) == ["question 1", "answer 1", "question 2", "answer 2"]


async def test_an_expired_lease_nobody_took_still_saves(backend: Backend) -> None:
    async with backend.lease(ADA) as first:
        await backend.expire(ADA)  # no other turn was granted since: the fence still holds
        await backend.store.append(ADA, turn(1), fence=first)
    assert len(await backend.store.load(ADA)) == 2


async def test_fences_are_per_conversation_and_grow(backend: Backend) -> None:
    async with backend.lease(ADA) as ada, backend.lease(BOB_GROUP) as bob:
        await backend.store.append(BOB_GROUP, turn(1), fence=bob)
        with pytest.raises(LeaseLost):
            await backend.store.append(ADA, turn(2), fence=bob)
        await backend.store.append(ADA, turn(3), fence=ada)
    async with backend.lease(ADA) as later:
        assert int(later.split(":")[0]) > int(ada.split(":")[0])
        assert later != ada


async def test_ttl_is_renewed_on_append(redis_client: aioredis.Redis) -> None:
    keys = KeySpace()
    store = RedisConversationStore(redis_client, max_messages=CAP, ttl_seconds=100)
    await store.append(ADA, turn(1))
    await redis_client.expire(keys.history(ADA), 5)
    await store.append(ADA, turn(2))
    assert 95 <= await redis_client.ttl(keys.history(ADA)) <= 100


async def test_keys_share_one_cluster_hash_tag() -> None:
    keys = KeySpace()
    tag = keys.tag(ADA_TOPIC)
    names = (
        keys.history(ADA_TOPIC), keys.lock(ADA_TOPIC), keys.stop(ADA_TOPIC),
        keys.fence(ADA_TOPIC), keys.running(ADA_TOPIC),
    )  # fmt: skip
    for name in (*names, keys.saved(ADA_TOPIC, "0a1b")):
        assert name.count("{") == 1
        assert name[name.index("{") : name.index("}") + 1] == tag


async def test_on_a_cluster_admin_work_covers_every_primary(cluster: RedisClusterSet) -> None:
    """Histories spread over the three primaries; stats and resets find them on all of them."""
    cluster.flush()
    settings = CoreSettings(_env_file=None, redis_url=cluster.url, redis_cluster=True)
    async with open_redis(settings) as (client, _):
        store = RedisConversationStore(client, max_messages=CAP)
        people = [ConversationKey("telegram", f"-9{n % 3}", f"user{n}") for n in range(60)]
        for n, key in enumerate(people):
            await store.append(key, turn(n))
        pattern = KeySpace().history_pattern()
        spread = cluster.key_counts(pattern)
        assert all(count > 0 for count in spread.values()), spread
        assert sum(spread.values()) == 60
        stats = await store.stats()
        assert (stats.conversations, stats.messages) == (60, 120)
        assert await store.clear_chat("telegram", "-90") == 20
        assert await store.clear_user("telegram", "user1") == 1
        assert await store.clear_all() == 39
        assert sum(cluster.key_counts(pattern).values()) == 0


async def test_unreadable_entries_are_skipped_not_fatal(redis_client: aioredis.Redis) -> None:
    store = RedisConversationStore(redis_client, max_messages=CAP)
    await store.append(ADA, turn(1))
    await redis_client.rpush(KeySpace().history(ADA), b"not json", b'{"r":"robot"}')
    await store.append(ADA, turn(2))
    assert [m.content for m in await store.load(ADA)][-2:] == ["question 2", "answer 2"]


async def test_unreachable_redis_fails_fast_with_store_error() -> None:
    options = redis_options(CoreSettings(redis_timeout=0.5))
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), **options)  # type: ignore[arg-type]
    store = RedisConversationStore(client)
    started = time.monotonic()
    try:
        with pytest.raises(StoreError, match="Redis failed during load"):
            await store.load(ADA)
        with pytest.raises(StoreError):
            await store.append(ADA, turn(1))
        # Refused connections fail in milliseconds; the bound (wall clock on a possibly busy
        # machine, hence stretched) catches options that retry or wait for many seconds.
        took = time.monotonic() - started
        assert took < patient(3), "our Redis options must not stall a turn"
    finally:
        await client.aclose()
