"""Personas and instructions through the real composition root, Redis and openai client: they
outlive the process, reach the model only as the first user turn, and a persona's model must be
one the server serves."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from bots.runtime import Runtime, open_runtime
from core.chat_settings import ChatScope
from core.commands import CommandName
from core.conversation import ConversationKey, IncomingMessage
from core.errors import ModelNotServed
from core.results import Outcome
from core.settings import CoreSettings
from core.sink import SinkLimits
from core.store.chat_settings import RedisChatSettings
from tests.fakes.fake_vllm import DEFAULT_MODEL, FakeVLLM
from tests.fakes.fixtures import FakeVLLMFactory
from tests.services import RedisServer
from tests.support import commands
from tests.support.sinks import RecordingSink

ADA = ConversationKey("terminal", "local", "ada")
RuntimeFactory = Callable[..., AbstractAsyncContextManager[Runtime]]
PERSONAS = f"""\
personas:
  - id: plain
    title: Plain
  - id: terse
    title: Terse
    instructions: Reply tersely.
    temperature: 0.55
  - id: same
    title: Same model
    model: {DEFAULT_MODEL}
  - id: elsewhere
    title: Elsewhere
    model: a-model-nobody-serves
  - id: huge
    title: Huge
    instructions: "{"word " * 3000}"
"""


@pytest.fixture
def runtime_for(redis_server: RedisServer, redis_client: Any, tmp_path: Path) -> RuntimeFactory:
    """Runtimes on the test Redis (emptied by ``redis_client``) with the personas above."""
    personas = tmp_path / "personas.yaml"
    personas.write_text(PERSONAS, encoding="utf-8")

    def build(fake: FakeVLLM, **overrides: Any) -> AbstractAsyncContextManager[Runtime]:
        settings = CoreSettings(
            _env_file=None,
            llm_base_url=fake.base_url,
            llm_retries=0,
            redis_url=redis_server.url,
            personas_file=str(personas),
            llm_instructions="Operator says hi.",
            **{"quota_messages_per_minute": 0, **overrides},
        )
        return open_runtime(settings)

    return build


def sink() -> RecordingSink:
    """A sink with fast pacing."""
    return RecordingSink(SinkLimits(max_length=4000, min_interval=0.01))


async def say(runtime: Runtime, text: str) -> RecordingSink:
    """Ada writes ``text``; the sink shows what she saw."""
    shown = sink()
    await runtime.service.handle(IncomingMessage(ADA, text, user_id=ADA.user), shown)
    return shown


async def test_the_choice_outlives_a_restart_and_a_reset(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory
) -> None:
    async with runtime_for(fake_vllm) as first:
        reply = await commands.run(first.service, CommandName.PERSONA, ADA, "terse")
        assert reply.ok, reply
        await commands.run(first.service, CommandName.INSTRUCTIONS, ADA, "Use", "metric.")
        await say(first, "hello")
    async with runtime_for(fake_vllm) as second:  # a new process on the same Redis
        await commands.run(second.service, CommandName.RESET, ADA)
        await say(second, "how far is the moon?")
    request = fake_vllm.requests[-1]
    assert [m["role"] for m in request["messages"]] == ["user"]  # reset: no history, no system
    assert request["messages"][0]["content"] == (
        "Operator says hi.\n\nReply tersely.\n\nUse metric.\n\nhow far is the moon?"
    )
    assert request["temperature"] == 0.55


async def test_a_persona_model_must_be_served(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory
) -> None:
    async with runtime_for(fake_vllm) as runtime:
        await commands.run(runtime.service, CommandName.PERSONA, ADA, "same")
        await say(runtime, "one")
        assert fake_vllm.requests[-1]["model"] == DEFAULT_MODEL
        await commands.run(runtime.service, CommandName.PERSONA, ADA, "elsewhere")
        shown = await say(runtime, "two")
        assert len(fake_vllm.requests) == 1  # never sent
        assert ModelNotServed.user_message in "\n".join(shown.texts())
        await commands.run(runtime.service, CommandName.PERSONA, ADA, "plain")
        await say(runtime, "three")  # the server was not blamed: it answers at once
        assert len(fake_vllm.requests) == 2


async def test_instructions_that_fill_the_context_are_told_not_sent(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(max_model_len=2048)
    async with runtime_for(fake, llm_max_tokens=512) as runtime:
        await commands.run(runtime.service, CommandName.PERSONA, ADA, "huge")
        shown = sink()
        result = await runtime.service.handle(IncomingMessage(ADA, "hi", user_id="ada"), shown)
        assert result.outcome is Outcome.REFUSED
        assert "\n".join(shown.texts()) == runtime.service.phrases.instructions_too_long
        assert fake.requests == []


async def test_the_store_works_on_the_in_memory_redis() -> None:
    store = RedisChatSettings(fakeredis.FakeAsyncRedis())
    group = ChatScope("slack", "C1")
    assert (await store.get(group)).persona == ""
    await store.set_persona(group, "terse")
    assert await store.set_instructions(group, "Be brief.")
    await store.set_persona(ChatScope.private("slack", "U1"), "terse")
    assert await store.persona_counts() == {"terse": 2}
    chosen = await store.get(group)
    assert (chosen.persona, chosen.instructions) == ("terse", "Be brief.")
    assert await store.set_instructions(group, "")
    assert not await store.set_instructions(group, "")
    assert (await store.get(group)).persona == "terse"  # clearing instructions keeps the persona
    assert await store.delete(group)
    assert not await store.delete(group)
    assert await store.persona_counts() == {"terse": 1}
