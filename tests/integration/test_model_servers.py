"""Several model servers (LLM_BASE_URL=a,b) through real sockets: affinity, failover, cool-down,
the session header, a context length learned from vLLM's 400, /readyz and `parley doctor`."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bots import doctor
from bots.ops import ops_listener
from bots.runtime import Runtime, open_runtime
from core.conversation import ConversationKey, IncomingMessage, Role, StoredMessage, Turn
from core.errors import ConfigError, ContextTooLong, LLMUnavailable
from core.llm.client import OpenAICompatibleClient, Timeouts, session_id
from core.llm.events import ChatMessage, Finished, SamplingParams, StreamEvent, TextDelta
from core.llm.servers import ServerPool
from core.results import Outcome, TurnResult
from core.settings import CoreSettings, load_settings
from core.sink import SinkLimits
from core.tokens import default_counter
from tests.fakes.fake_vllm import FakeVLLM
from tests.fakes.fixtures import FakeVLLMFactory
from tests.services import RedisServer, free_port
from tests.support.sinks import RecordingSink
from tests.support.timing import eventually

RuntimeFactory = Callable[..., AbstractAsyncContextManager[Runtime]]


def key(n: int) -> ConversationKey:
    """Conversation ``n`` (user names use no hex digit, so no session id can contain them)."""
    return ConversationKey("telegram", f"chat{n}", f"user{n}")


def message(k: ConversationKey, text: str) -> IncomingMessage:
    """A message in conversation ``k``."""
    return IncomingMessage(k, text, user_id=k.user)


def turn_text(k: ConversationKey, turn: int) -> str:
    """What conversation ``k`` says at ``turn``: unique, so each request can be traced back."""
    return f"{k.user} turn {turn}"


def sink() -> RecordingSink:
    """A platform-like sink with fast pacing."""
    return RecordingSink(SinkLimits(max_length=4000, min_interval=0.01))


def sent_by(fake: FakeVLLM, k: ConversationKey) -> list[str]:
    """The texts of conversation ``k`` that reached ``fake``, one per request, in order."""
    lasts = [
        [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        for body in fake.requests
    ]
    return [text for text in lasts if text.startswith(f"{k.user} ")]


@pytest_asyncio.fixture
async def runtime_for(redis_server: RedisServer, redis_client: Any) -> RuntimeFactory:
    """Runtimes from the real composition root, LLM_BASE_URL listing the given fakes."""

    def build(*fakes: FakeVLLM, **overrides: Any) -> AbstractAsyncContextManager[Runtime]:
        settings = CoreSettings(
            _env_file=None,
            llm_base_url=",".join(f.base_url for f in fakes),
            llm_retries=0,
            llm_first_token_timeout=60,
            llm_idle_timeout=10,
            lock_lease_seconds=5,
            **{"quota_messages_per_minute": 0, "redis_url": redis_server.url, **overrides},
        )
        return open_runtime(settings)

    return build


def owner(rt: Runtime, k: ConversationKey) -> str:
    """The base URL of the server conversation ``k`` belongs to."""
    return rt.llm.ranked(str(k))[0].base_url


async def one_round(rt: Runtime, keys: Sequence[ConversationKey], turn: int) -> list[TurnResult]:
    """Every conversation says its ``turn`` at once."""
    return await asyncio.gather(
        *(rt.service.handle(message(k, turn_text(k, turn)), sink()) for k in keys)
    )


def answered_and_saved(results: Sequence[TurnResult]) -> bool:
    """Every turn was answered and stored."""
    return all(r.outcome is Outcome.ANSWERED and r.saved for r in results)


async def test_a_conversation_always_reaches_its_own_server_and_they_spread(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    a, b = await fake_vllm_factory(), await fake_vllm_factory()
    keys = [key(n) for n in range(30)]
    async with runtime_for(a, b) as rt:
        owners = {k: owner(rt, k) for k in keys}
        rounds = [await one_round(rt, keys, turn) for turn in range(3)]
    assert all(answered_and_saved(results) for results in rounds)
    assert set(owners.values()) == {a.base_url, b.base_url}  # 30 conversations: both get some
    for k in keys:
        mine, other = (a, b) if owners[k] == a.base_url else (b, a)
        assert sent_by(mine, k) == [turn_text(k, t) for t in range(3)]
        assert sent_by(other, k) == []


async def test_a_killed_server_s_conversations_move_and_none_is_lost(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    a, b = await fake_vllm_factory(), await fake_vllm_factory()
    keys = [key(n) for n in range(50)]
    async with runtime_for(a, b, llm_server_cooldown_seconds=600) as rt:
        on_a = [k for k in keys if owner(rt, k) == a.base_url]
        assert 0 < len(on_a) < len(keys)
        rounds = [await one_round(rt, keys, 0), await one_round(rt, keys, 1)]
        # Turn 2: A hangs before its first token, and is killed with all its requests in flight.
        a.first_token_delay = 600
        before = len(a.requests)
        in_flight = asyncio.ensure_future(one_round(rt, keys, 2))
        await eventually(
            lambda: len(a.requests) == before + len(on_a), what="A's conversations to reach A"
        )
        await a.stop()
        rounds.append(await in_flight)
        rounds.append(await one_round(rt, keys, 3))  # A is down and cooling: straight to B
        histories = {k: await rt.service.runner.store.load(k) for k in keys}
    assert all(answered_and_saved(results) for results in rounds)
    for k in keys:
        expected = [(turn_text(k, t), f"You said: {turn_text(k, t)}") for t in range(4)]
        assert [m.content for m in histories[k]] == [text for pair in expected for text in pair]
        if k in on_a:
            assert sent_by(a, k) == [turn_text(k, t) for t in range(3)]  # 2 was cut off
            assert sent_by(b, k) == [turn_text(k, 2), turn_text(k, 3)]  # each answered once
        else:
            assert sent_by(a, k) == []
            assert sent_by(b, k) == [turn_text(k, t) for t in range(4)]


async def test_a_stream_dropped_before_any_token_moves_one_that_showed_tokens_does_not(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    a, b = await fake_vllm_factory(), await fake_vllm_factory()
    async with runtime_for(a, b, llm_server_cooldown_seconds=0) as rt:
        k = next(key(n) for n in range(100) if owner(rt, key(n)) == a.base_url)
        a.die_after(0)  # the connection drops after the role chunk: nothing was shown
        moved = await rt.service.handle(message(k, turn_text(k, 0)), sink())
        a.die_after(3)  # three tokens shown, then the connection drops
        cut_sink = sink()
        cut = await rt.service.handle(message(k, turn_text(k, 1)), cut_sink)
        history = await rt.service.runner.store.load(k)
    assert moved.outcome is Outcome.ANSWERED
    assert sent_by(a, k) == [turn_text(k, 0), turn_text(k, 1)]
    assert sent_by(b, k) == [turn_text(k, 0)]  # only the first was moved
    assert cut.outcome is Outcome.FAILED
    assert LLMUnavailable.user_message in cut_sink.texts()[-1]
    assert [m.content for m in history] == [turn_text(k, 0), f"You said: {turn_text(k, 0)}"]


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.time = 1000.0

    def now(self) -> float:
        """The time the test set."""
        return self.time

    async def sleep(self, seconds: float) -> None:
        """Moves the time instead of waiting."""
        self.time += seconds


def client_for(fake: FakeVLLM) -> OpenAICompatibleClient:
    """A client with short timeouts."""
    return OpenAICompatibleClient(
        fake.base_url, "EMPTY", timeouts=Timeouts(connect=2, first_token=30, idle=10)
    )


async def answer(pool: ServerPool, affinity: str) -> str:
    """One whole answer from the pool."""
    events: list[StreamEvent] = [
        e
        async for e in pool.stream(
            [ChatMessage("user", "hi")], SamplingParams(max_tokens=128), affinity=affinity
        )
    ]
    assert isinstance(events[-1], Finished)
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_an_overloaded_server_cools_down_then_gets_its_conversations_back(
    fake_vllm_factory: FakeVLLMFactory,
) -> None:
    a, b = await fake_vllm_factory(), await fake_vllm_factory()
    clock = ManualClock()
    first, second = client_for(a), client_for(b)
    pool = ServerPool([first, second], cooldown=20, clock=clock)
    try:
        affinity = next(f"c{n}" for n in range(100) if pool.ranked(f"c{n}")[0] is first)
        a.fail_next(503)  # vLLM overloaded (or draining)
        assert "You said: hi" in await answer(pool, affinity)
        assert (len(a.requests), len(b.requests)) == (1, 1)  # refused by A, answered by B
        assert pool.is_cooling(first)
        await answer(pool, affinity)
        assert (len(a.requests), len(b.requests)) == (1, 2)  # A is skipped while it cools
        await clock.sleep(21)
        await answer(pool, affinity)
        assert (len(a.requests), len(b.requests)) == (2, 2)  # and is its server again after
        assert not pool.is_cooling(first)
    finally:
        await pool.close()


async def test_every_server_down_is_the_usual_unavailable_error(
    fake_vllm_factory: FakeVLLMFactory,
) -> None:
    a = await fake_vllm_factory()
    dead = OpenAICompatibleClient(f"http://127.0.0.1:{free_port()}/v1", "EMPTY")
    pool = ServerPool([client_for(a), dead], cooldown=20, clock=ManualClock())
    try:
        await a.stop()
        with pytest.raises(LLMUnavailable, match="cannot reach"):
            await answer(pool, "c")
        with pytest.raises(LLMUnavailable):  # all cooling: both are tried rather than none
            await answer(pool, "c")
    finally:
        await pool.close()


async def test_requests_carry_the_conversation_s_session_id(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory
) -> None:
    ursula, victor = key(1), key(2)
    async with runtime_for(fake_vllm) as rt:  # one URL: a router in front routes by session
        for k, text in ((ursula, "one"), (ursula, "two"), (victor, "hi")):
            assert (await rt.service.handle(message(k, text), sink())).outcome is Outcome.ANSWERED
    ids = [headers.get("x-session-id") for headers in fake_vllm.request_headers]
    assert ids == [session_id(str(ursula))] * 2 + [session_id(str(victor))]
    assert ids[0] != ids[2]
    assert all(i is not None and len(i) == 32 and "user" not in i for i in ids)


async def seed_history(rt: Runtime, k: ConversationKey, turns: int, words: int) -> None:
    """Store ``turns`` long turns as if they had been answered earlier."""
    counter = default_counter()
    for n in range(turns):
        asked = f"question {n}: " + "tell me more " * (words // 3)
        said = f"answer {n}: " + "here is more " * (words // 3)
        await rt.service.runner.store.append(
            k,
            Turn(
                StoredMessage(Role.USER, asked, counter.count(asked)),
                StoredMessage(Role.ASSISTANT, said, counter.count(said)),
            ),
        )


async def test_llm_context_tokens_above_the_server_s_is_relearned_from_its_400(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(max_model_len=2048)
    k = key(1)
    async with runtime_for(fake, llm_context_tokens=16384) as rt:
        await seed_history(rt, k, turns=4, words=300)
        first_sink, next_sink = sink(), sink()
        first = await rt.service.handle(message(k, "first question"), first_sink)
        requests_for_first = len(fake.requests)
        after = await rt.service.handle(message(k, "next question"), next_sink)
        budget = await rt.service.runner.answerer.limits(str(k))
    assert first.outcome is Outcome.ANSWERED
    assert first.saved
    assert requests_for_first == 2  # refused once with the real limit, then re-fitted
    assert fake.count_prompt_tokens(fake.requests[0]["messages"]) > 2048
    assert fake.count_prompt_tokens(fake.requests[1]["messages"]) <= 2048
    assert after.outcome is Outcome.ANSWERED
    assert after.saved
    assert len(fake.requests) == 3  # the next message went straight through
    assert budget.context_tokens == 2048
    for out in (first_sink, next_sink):
        assert not any(ContextTooLong.user_message in text for text in out.texts())


async def test_a_server_restarted_with_a_smaller_context_is_believed_from_its_400(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(max_model_len=8192)
    k = key(1)
    async with runtime_for(fake) as rt:
        await seed_history(rt, k, turns=4, words=300)
        warm = await rt.service.handle(message(k, "while it is big"), sink())
        fake.max_model_len = 2048  # what vLLM restarted with --max-model-len 2048 enforces
        shrunk = await rt.service.handle(message(k, "after the restart"), sink())
        requests_until_shrunk = len(fake.requests)
        later = await rt.service.handle(message(k, "later"), sink())
    assert [r.outcome for r in (warm, shrunk, later)] == [Outcome.ANSWERED] * 3
    assert requests_until_shrunk == 3  # warm: 1; after the restart: refused once, re-fitted
    assert len(fake.requests) == 4  # later turns use the learned limit
    assert fake.count_prompt_tokens(fake.requests[-1]["messages"]) <= 2048


async def test_readyz_is_ready_while_one_server_answers_and_lists_each(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    a, b = await fake_vllm_factory(), await fake_vllm_factory()
    async with (
        runtime_for(a, b) as rt,
        ops_listener(rt, "127.0.0.1:0") as port,
        aiohttp.ClientSession() as http,
    ):
        url = f"http://127.0.0.1:{port}/readyz"
        both = await http.get(url)
        both_body = await both.json()
        await b.stop()
        one = await http.get(url)
        one_body = await one.json()
        b_cools = rt.llm.is_cooling(rt.llm.servers[1])
        await a.stop()
        none = await http.get(url)
        none_body = await none.json()
    assert both.status == 200
    assert both_body["model_servers"] == {a.base_url: "ok", b.base_url: "ok"}
    assert one.status == 200
    assert (one_body["status"], one_body["model"]) == ("ready", "ok")
    assert one_body["model_servers"][a.base_url] == "ok"
    assert one_body["model_servers"][b.base_url].startswith("unreachable")
    assert b_cools  # the probe's failure already steers conversations away
    assert none.status == 503
    assert none_body["model"].startswith("unreachable")


async def test_doctor_checks_each_server_and_flags_a_context_above_one(
    fake_vllm_factory: FakeVLLMFactory, redis_server: RedisServer, redis_client: Any
) -> None:
    big = await fake_vllm_factory(max_model_len=8192)
    small = await fake_vllm_factory(max_model_len=2048)
    down = f"http://127.0.0.1:{free_port()}/v1"
    settings = CoreSettings(
        _env_file=None,
        llm_base_url=f"{big.base_url},{small.base_url},{down}",
        llm_context_tokens=4096,
        llm_max_tokens=512,
        redis_url=redis_server.url,
    )
    out = io.StringIO()
    code = await doctor.run(settings, out)
    lines = out.getvalue().splitlines()
    assert f"✓ model server at {big.base_url} serves {big.model}" in lines
    assert f"✓ model server at {small.base_url} serves {small.model}" in lines
    flagged = [line for line in lines if "LLM_CONTEXT_TOKENS=4096 is above" in line]
    assert flagged == [
        f"! LLM_CONTEXT_TOKENS=4096 is above the max_model_len 2048 of {small.base_url}"
    ]
    assert any(line.startswith(f"! model server at LLM_BASE_URL={down}: ") for line in lines)
    assert code == 0  # one server down while others answer is a warning, not a failure


@pytest.mark.parametrize(
    "value", ["localhost:8000/v1", "http://a:8000/v1,ftp://b/v1", "http://a:port/v1", "http://"]
)
def test_llm_base_url_lists_http_urls_or_names_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("LLM_BASE_URL", value)
    with pytest.raises(ConfigError, match=r"LLM_BASE_URL: .*http"):
        load_settings(CoreSettings)


def test_llm_base_url_with_one_or_several_servers() -> None:
    one = CoreSettings(_env_file=None, llm_base_url="http://vllm:8000/v1")
    several = CoreSettings(_env_file=None, llm_base_url=" http://a:8000/v1 , https://b/v1 ,")
    unset = CoreSettings(_env_file=None, llm_base_url="")
    assert one.llm_base_urls == ("http://vllm:8000/v1",)
    assert one.llm_base_url == "http://vllm:8000/v1"
    assert several.llm_base_urls == ("http://a:8000/v1", "https://b/v1")
    assert unset.llm_base_urls == ("http://localhost:8000/v1",)
