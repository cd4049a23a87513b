"""One ConversationStore contract, run against the in-memory store, fakeredis and real Redis."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import fakeredis
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from bots.runtime import redis_options
from core.conversation import ConversationKey, Role, StoredMessage, Turn
from core.errors import StoreError
from core.settings import CoreSettings
from core.store.keys import KeySpace
from core.store.memory import InMemoryConversationStore
from core.store.protocol import ConversationStore
from core.store.redis_store import RedisConversationStore
from tests.services import RedisServer, free_port
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


@pytest_asyncio.fixture(params=["memory", "fakeredis", "redis"])
async def store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[ConversationStore]:
    """The same contract over every backend."""
    if request.param == "memory":
        yield InMemoryConversationStore(max_messages=CAP, ttl_seconds=TTL)
        return
    if request.param == "fakeredis":
        client: aioredis.Redis = fakeredis.FakeAsyncRedis()
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = aioredis.Redis.from_url(server.url)
        await client.flushall()
    try:
        yield RedisConversationStore(client, max_messages=CAP, ttl_seconds=TTL)
    finally:
        await client.aclose()


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
    names = (keys.history(ADA_TOPIC), keys.lock(ADA_TOPIC), keys.stop(ADA_TOPIC))
    for name in (*names, keys.saved(ADA_TOPIC, "0a1b")):
        assert name.count("{") == 1
        assert name[name.index("{") : name.index("}") + 1] == tag


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
