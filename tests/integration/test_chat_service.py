"""ChatService end to end: real Redis, the real openai client, a vLLM-compatible server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import pytest_asyncio

from bots.runtime import Runtime, open_runtime
from core.commands import CommandName
from core.conversation import ConversationKey, IncomingMessage, Role
from core.results import Outcome
from core.settings import BusyPolicy, CoreSettings, ShowReasoning
from core.sink import SegmentKind, SinkLimits
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.fakes.fixtures import FakeVLLMFactory
from tests.services import RedisServer, free_port
from tests.support import commands
from tests.support.sinks import RecordingSink
from tests.support.tcp_proxy import LossyProxy
from tests.support.timing import patient

ADA = ConversationKey("telegram", "1", "ada")
RuntimeFactory = Callable[..., AbstractAsyncContextManager[Runtime]]


def message(text: str, key: ConversationKey = ADA) -> IncomingMessage:
    """A message from Ada."""
    return IncomingMessage(key, text, user_id=key.user)


def sink(max_length: int = 4000, interval: float = 0.02) -> RecordingSink:
    """A platform-like sink with fast pacing."""
    return RecordingSink(SinkLimits(max_length=max_length, min_interval=interval))


@pytest_asyncio.fixture
async def runtime_for(redis_server: RedisServer, redis_client: Any) -> RuntimeFactory:
    """Build runtimes (the real composition root) against the test Redis and a fake vLLM."""

    def build(fake: FakeVLLM, **overrides: Any) -> AbstractAsyncContextManager[Runtime]:
        settings = CoreSettings(
            _env_file=None,
            llm_base_url=fake.base_url,
            llm_retries=0,
            llm_first_token_timeout=5,
            llm_idle_timeout=5,
            lock_lease_seconds=3,
            **{"quota_messages_per_minute": 0, "redis_url": redis_server.url, **overrides},
        )
        return open_runtime(settings)

    return build


@pytest_asyncio.fixture
async def runtime(fake_vllm: FakeVLLM, runtime_for: RuntimeFactory) -> AsyncIterator[Runtime]:
    """A runtime with default settings."""
    async with runtime_for(fake_vllm) as built:
        yield built


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until ``condition`` holds (for up to patient(timeout) s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patient(timeout)
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_answer_lands_and_the_turn_is_stored_without_reasoning(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.01)
    fake.script(Reply("Secret chain of thought " * 10, "The answer is **42**."))
    async with runtime_for(fake) as rt:
        out = sink()
        result = await rt.service.handle(message("What is the answer?"), out)
        history = await rt.service.runner.store.load(ADA)
    assert result.outcome is Outcome.ANSWERED
    assert result.saved
    assert out.texts() == ["The answer is **42**."]
    span = out.writes[-1].at - out.writes[0].at
    assert len(out.writes) <= span / 0.02 + 2  # paced: never above one write per interval
    kinds = {s.kind for call in out.writes for s in call.content}
    assert SegmentKind.STATUS in kinds  # "Thinking…" while it reasoned
    assert all("Secret chain" not in call.text for call in out.writes)
    assert [(m.role, m.content) for m in history] == [
        (Role.USER, "What is the answer?"),
        (Role.ASSISTANT, "The answer is **42**."),
    ]
    assert history[0].tokens > 0
    assert history[1].tokens > 0


async def test_a_save_whose_reply_was_lost_is_stored_once_and_reported_saved(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory, redis_server: RedisServer
) -> None:
    proxy = LossyProxy(redis_server.port)
    await proxy.start()
    try:
        async with runtime_for(fake_vllm, redis_url=proxy.url) as rt:
            proxy.lose_reply_to(b":saved:")  # Redis applies the save, the answer never comes
            out = sink()
            result = await rt.service.handle(message("remember me"), out)
            history = await rt.service.runner.store.load(ADA)
    finally:
        await proxy.stop()
    assert proxy.lost == 1
    assert result.outcome is Outcome.ANSWERED
    assert result.saved
    assert out.texts() == ["You said: remember me"]  # no "couldn't save" for a saved turn
    assert [m.content for m in history] == ["remember me", "You said: remember me"]


async def test_second_turn_carries_the_first_and_instructions_fold_into_the_user_turn(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory
) -> None:
    async with runtime_for(fake_vllm, llm_instructions="Answer briefly.") as rt:
        await rt.service.handle(message("My name is Ada."), sink())
        await rt.service.handle(message("What is my name?"), sink())
        history = await rt.service.runner.store.load(ADA)
    sent = fake_vllm.requests[1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "Answer briefly.\n\nMy name is Ada."
    assert sent[2]["content"] == "What is my name?"
    assert history[0].content == "My name is Ada."  # instructions are not stored


async def test_collapsed_and_full_reasoning_modes(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory
) -> None:
    fake_vllm.script(Reply("thinking hard", "done"), Reply("thinking hard", "done"))
    collapsible = RecordingSink(
        SinkLimits(max_length=4000, min_interval=0.02, supports_collapsed=True)
    )
    async with runtime_for(fake_vllm, show_reasoning=ShowReasoning.COLLAPSED) as rt:
        await rt.service.handle(message("q"), collapsible)
    final = list(collapsible.shown.values())[-1]
    assert [s.kind for s in final] == [SegmentKind.ANSWER, SegmentKind.REASONING_COLLAPSED]
    assert final[1].text == "thinking hard"
    full = sink()
    async with runtime_for(fake_vllm, show_reasoning=ShowReasoning.FULL) as rt:
        await rt.service.handle(message("q", ConversationKey("t", "2", "b")), full)
    shown = list(full.shown.values())[-1]
    assert [s.kind for s in shown] == [SegmentKind.REASONING, SegmentKind.ANSWER]


async def test_model_server_killed_mid_answer(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.01)
    fake.script(Reply("r", "word " * 200))
    async with runtime_for(fake) as rt:
        out = sink()
        task = asyncio.create_task(rt.service.handle(message("tell me"), out))
        await wait_until(lambda: any("word" in c.text for c in out.writes))
        await fake.stop()
        result = await task
        assert result.outcome is Outcome.FAILED
        assert "model server is unavailable" in out.texts()[-1]
        assert out.texts()[-1].startswith("word")  # what was shown stays
        assert await rt.service.runner.store.load(ADA) == []  # nothing half-saved
        await fake.restart()
        again = sink()
        result = await rt.service.handle(message("are you back?"), again)
        assert result.outcome is Outcome.ANSWERED
        assert again.texts() == ["You said: are you back?"]
        assert len(await rt.service.runner.store.load(ADA)) == 2


async def test_model_server_down_before_the_turn(runtime_for: RuntimeFactory) -> None:
    dead = FakeVLLM()
    dead.port = free_port()
    async with runtime_for(dead) as rt:
        out = sink()
        result = await rt.service.handle(message("hello?"), out)
        assert result.outcome is Outcome.FAILED
        assert out.texts() == ["The model server is unavailable, try again shortly."]
        assert await rt.service.runner.store.load(ADA) == []


async def test_stop_keeps_what_was_shown_and_aborts_generation(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.01)
    fake.script(Reply("r", "step " * 300))
    async with runtime_for(fake) as rt:
        out = sink()
        task = asyncio.create_task(rt.service.handle(message("count"), out))
        await wait_until(lambda: any("step" in c.text for c in out.writes))
        assert await commands.stop(rt.service, ADA) is True
        result = await task
        history = await rt.service.runner.store.load(ADA)
    assert result.outcome is Outcome.STOPPED
    final = out.texts()[-1]
    assert final.endswith("⏹ Stopped.")
    assert result.answer
    assert final.startswith(result.answer)
    assert result.answer.count("step") < 300
    assert history[-1].content == result.answer
    await wait_until(lambda: fake.aborted == 1)


async def test_stop_from_another_replica(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.01)
    fake.script(Reply("r", "step " * 300))
    async with runtime_for(fake) as first, runtime_for(fake) as second:
        out = sink()
        task = asyncio.create_task(first.service.handle(message("count"), out))
        await wait_until(lambda: any("step" in c.text for c in out.writes))
        assert await commands.stop(second.service, ADA) is True
        result = await asyncio.wait_for(task, patient(5))
    assert result.outcome is Outcome.STOPPED


@pytest.mark.parametrize("policy", list(BusyPolicy))
async def test_busy_policies(
    policy: BusyPolicy, fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.005)
    async with runtime_for(fake, busy_policy=policy) as rt:
        first_sink, second_sink = sink(), sink()
        first = asyncio.create_task(rt.service.handle(message("one " * 30), first_sink))
        await wait_until(lambda: len(fake.requests) == 1)
        second = await rt.service.handle(message("two"), second_sink)
        first_result = await first
        history = await rt.service.runner.store.load(ADA)
    users = [m.content for m in history if m.role is Role.USER]
    if policy is BusyPolicy.QUEUE:
        assert first_result.outcome is Outcome.ANSWERED
        assert second.outcome is Outcome.ANSWERED
        assert users == [("one " * 30).strip(), "two"]
        assert [m["role"] for m in fake.requests[1]["messages"]] == ["user", "assistant", "user"]
    elif policy is BusyPolicy.REJECT:
        assert first_result.outcome is Outcome.ANSWERED
        assert second.outcome is Outcome.BUSY
        assert "still answering" in second_sink.texts()[0]
        assert users == [("one " * 30).strip()]
    else:
        assert first_result.outcome is Outcome.INTERRUPTED
        assert second.outcome is Outcome.ANSWERED
        assert first_sink.texts()[-1].endswith("⏹ Stopped to answer your new message.")
        assert users[-1] == "two"


async def test_retry_replaces_the_last_answer(fake_vllm: FakeVLLM, runtime: Runtime) -> None:
    fake_vllm.script(Reply("r", "first try"), Reply("r", "second try"))
    await runtime.service.handle(message("question"), sink())
    out = sink()
    result = await commands.retry(runtime.service, ADA, out)
    history = await runtime.service.runner.store.load(ADA)
    assert result.outcome is Outcome.ANSWERED
    assert out.texts() == ["second try"]
    assert [m.content for m in history] == ["question", "second try"]
    nothing = sink()
    await commands.run(runtime.service, CommandName.RESET, ADA)
    assert (await commands.retry(runtime.service, ADA, nothing)).outcome is Outcome.REFUSED
    assert nothing.texts() == ["There is no earlier message to answer again."]


async def test_bad_input_gets_a_hint_and_control_characters_are_dropped(
    fake_vllm: FakeVLLM, runtime: Runtime
) -> None:
    out = sink()
    assert (await runtime.service.handle(message(" \x00\x07 \n "), out)).outcome is Outcome.REFUSED
    assert out.texts() == ["Send me a text message and I'll answer."]
    assert fake_vllm.requests == []
    await runtime.service.handle(message("he\x00llo\x1b"), sink())
    assert fake_vllm.requests[0]["messages"][-1]["content"] == "hello"


async def test_context_is_fitted_over_many_turns_and_the_user_told_once(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(max_model_len=600)
    trimmed = "Older messages were left out"
    notices = 0
    async with runtime_for(fake, llm_max_tokens=200) as rt:
        for n in range(40):
            out = sink()
            result = await rt.service.handle(message(f"turn {n}: " + "lorem ipsum " * 8), out)
            assert result.outcome is Outcome.ANSWERED, out.texts()
            notices += sum(trimmed in text for text in out.texts())
    assert notices == 1
    assert all(fake.count_prompt_tokens(r["messages"]) <= 600 - 200 for r in fake.requests)
    assert len(fake.requests[-1]["messages"]) > 1


async def test_a_message_over_the_whole_budget_is_refused_with_numbers(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(max_model_len=512)
    async with runtime_for(fake, llm_max_tokens=128) as rt:
        out = sink()
        result = await rt.service.handle(message("word " * 2000), out)
    assert result.outcome is Outcome.REFUSED
    assert "too long for the model" in out.texts()[0]
    assert "2000 tokens" in out.texts()[0] or "tokens" in out.texts()[0]
    assert fake.requests == []


async def test_reply_budget_spent_on_reasoning_is_explained(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory
) -> None:
    fake_vllm.script(Reply("very long reasoning " * 50, "never reached"))
    async with runtime_for(fake_vllm, llm_max_tokens=24) as rt:
        out = sink()
        result = await rt.service.handle(message("hard question"), out)
        history = await rt.service.runner.store.load(ADA)
    assert result.outcome is Outcome.ANSWERED
    assert "used up its reply budget while thinking" in out.texts()[-1]
    assert history == []


async def test_redis_failing_mid_conversation_is_told_and_the_bot_keeps_serving(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory, redis_server: RedisServer
) -> None:
    async with runtime_for(fake_vllm) as rt:
        await rt.service.handle(message("before"), sink())
        redis_server.stop()
        try:
            out = sink()
            result = await rt.service.handle(message("during"), out)
            assert result.outcome is Outcome.FAILED
            assert out.texts() == [
                "I can't reach my memory store right now. Please try again shortly."
            ]
        finally:
            redis_server.restart()
        out = sink()
        result = await rt.service.handle(message("after"), out)
        assert result.outcome is Outcome.ANSWERED
        assert out.texts() == ["You said: after"]
