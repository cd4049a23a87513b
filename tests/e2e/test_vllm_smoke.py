"""Smoke tests of the real vLLM server (scripted tiny model) with the `openai` client.

They pin down the shapes Parley relies on, as vLLM really sends them: the served name and
context length, the reasoning/content split of a stream, `/tokenize` with the chat template,
the 400 for an over-long prompt, and a server that stays healthy when a stream is dropped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI

from bots.model.serve import read_test_model_info
from tests.e2e.vllm_server import RealVllm
from tools.test_model_script import (
    EXPECTED_CONTENT,
    EXPECTED_REASONING,
    SCRIPTED_ANSWER,
    SCRIPTED_REASONING,
    SERVED_MODEL_NAME,
)

pytestmark = pytest.mark.vllm

# <｜Assistant｜><think>\n — the end of every generation prompt of DeepSeek-R1-Distill-Qwen.
GENERATION_PROMPT_IDS = [151645, 151648, 198]
BOS_ID = 151646
USER_ID = 151644


@pytest_asyncio.fixture
async def client(real_vllm: str) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=real_vllm, api_key="unused", max_retries=0) as c:
        yield c


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as s:
        yield s


def _extra(obj: Any, name: str) -> Any:
    """A field the OpenAI types do not declare (vLLM's `reasoning`, `max_model_len`)."""
    value = getattr(obj, name, None)
    if value is None and getattr(obj, "model_extra", None):
        value = obj.model_extra.get(name)
    return value


async def test_models_lists_served_name_and_context(
    client: AsyncOpenAI, real_vllm_server: RealVllm
) -> None:
    models = [m async for m in client.models.list()]
    assert [m.id for m in models] == [SERVED_MODEL_NAME]
    assert _extra(models[0], "max_model_len") == real_vllm_server.max_model_len


async def test_stream_splits_scripted_reasoning_and_answer(
    client: AsyncOpenAI, real_vllm_server: RealVllm
) -> None:
    stream = await client.chat.completions.create(
        model=SERVED_MODEL_NAME,
        messages=[{"role": "user", "content": "Hello! Who are you?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    reasoning: list[str] = []
    content: list[str] = []
    finish: list[str | None] = []
    roles: list[str | None] = []
    usage = None
    async with stream:
        async for chunk in stream:
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                roles.append(choice.delta.role)
                r = _extra(choice.delta, "reasoning")
                if r:
                    reasoning.append(r)
                if choice.delta.content:
                    content.append(choice.delta.content)
                if choice.finish_reason is not None:
                    finish.append(choice.finish_reason)
    assert roles[0] == "assistant"
    assert "".join(reasoning) == EXPECTED_REASONING == SCRIPTED_REASONING
    assert "".join(content) == EXPECTED_CONTENT
    assert "".join(content).removeprefix("\n\n") == SCRIPTED_ANSWER
    assert "</think>" not in "".join(reasoning) + "".join(content)
    assert finish == ["stop"]
    assert usage is not None
    info = read_test_model_info(real_vllm_server.model_dir) if real_vllm_server.model_dir else None
    if info is not None:
        # Every chain token but the prompt's "\n": reasoning, </think>, answer and EOS.
        chain = info["chain_token_ids"]
        assert isinstance(chain, list)
        assert usage.completion_tokens == len(chain) - 1


async def test_tokenize_messages_ends_with_generation_prompt(
    http: aiohttp.ClientSession, real_vllm_server: RealVllm
) -> None:
    body = {
        "model": SERVED_MODEL_NAME,
        "messages": [
            {"role": "user", "content": "Hello, world!"},
            {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHi!"},
            {"role": "user", "content": "你好 👋"},
        ],
    }
    async with http.post(f"{real_vllm_server.root_url}/tokenize", json=body) as resp:
        assert resp.status == 200
        data = await resp.json()
    tokens = data["tokens"]
    assert data["count"] == len(tokens)
    assert data["max_model_len"] == real_vllm_server.max_model_len
    assert tokens[:2] == [BOS_ID, USER_ID]
    assert tokens[2:6] == [9707, 11, 1879, 0]  # "Hello, world!" in the Qwen2 vocabulary
    assert tokens[-3:] == GENERATION_PROMPT_IDS
    # The template drops the earlier answer's reasoning: no <think>/</think> but the last one.
    assert tokens.count(151648) == 1
    assert 151649 not in tokens


async def test_prompt_over_context_is_a_400(
    client: AsyncOpenAI, real_vllm_server: RealVllm
) -> None:
    limit = real_vllm_server.max_model_len
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model=SERVED_MODEL_NAME,
            messages=[{"role": "user", "content": "hello " * (limit + 10)}],
            stream=True,
        )
    err = info.value
    assert err.status_code == 400
    assert isinstance(err.body, dict)
    message = err.body["message"]
    assert f"maximum context length is {limit} tokens" in message
    assert "your prompt contains at least" in message
    assert err.body["type"] == "BadRequestError"
    assert err.body["param"] == "input_tokens"


async def test_closing_a_stream_midway_leaves_server_healthy(
    client: AsyncOpenAI, http: aiohttp.ClientSession, real_vllm_server: RealVllm
) -> None:
    stream = await client.chat.completions.create(
        model=SERVED_MODEL_NAME,
        messages=[{"role": "user", "content": "Tell me everything."}],
        stream=True,
    )
    seen = 0
    async for _chunk in stream:
        seen += 1
        if seen == 3:
            break
    await stream.close()
    assert seen == 3

    async with http.get(f"{real_vllm_server.root_url}/health") as resp:
        assert resp.status == 200
    # And it still answers in full.
    reply = await client.chat.completions.create(
        model=SERVED_MODEL_NAME, messages=[{"role": "user", "content": "Again?"}]
    )
    assert reply.choices[0].message.content == EXPECTED_CONTENT
    assert _extra(reply.choices[0].message, "reasoning") == EXPECTED_REASONING
    assert reply.choices[0].finish_reason == "stop"
