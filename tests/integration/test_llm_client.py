"""The vLLM client through the real `openai` package against a vLLM-compatible server."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import ContextTooLong, LLMError, LLMOverloaded, LLMUnavailable, ModelNotFound
from core.llm.client import OpenAICompatibleClient, Timeouts
from core.llm.events import (
    ChatMessage,
    Finished,
    ReasoningDelta,
    SamplingParams,
    StreamEvent,
    TextDelta,
)
from core.retry import BLIP
from core.tokens import default_counter, prompt_tokens
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.fakes.fixtures import FakeVLLMFactory
from tests.services import free_port
from tests.support.timing import eventually

HELLO = [ChatMessage("user", "hello")]


def client_for(
    fake: FakeVLLM, *, model: str = "", retries: int = 1, timeouts: Timeouts | None = None
) -> OpenAICompatibleClient:
    """A client with short timeouts for tests."""
    timeouts = timeouts or Timeouts(connect=1, first_token=5, idle=5)
    return OpenAICompatibleClient(
        fake.base_url, "EMPTY", model=model, retry=BLIP.at_most(retries), timeouts=timeouts
    )


async def collect(client: OpenAICompatibleClient, messages: list[ChatMessage]) -> list[StreamEvent]:
    """All events of one stream."""
    return [e async for e in client.stream(messages, SamplingParams(max_tokens=256))]


def texts(events: list[StreamEvent]) -> tuple[str, str]:
    """Reasoning and answer, joined."""
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    return reasoning, answer


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content", "none"])
async def test_reasoning_and_answer_are_separated_for_every_server_shape(
    fake_vllm_factory: FakeVLLMFactory, field: str
) -> None:
    fake = await fake_vllm_factory(reasoning_field=field)  # type: ignore[arg-type]
    fake.script(Reply("Let me think </thi about it.", "**Four.**"))
    client = client_for(fake)
    try:
        events = await collect(client, HELLO)
    finally:
        await client.close()
    reasoning, answer = texts(events)
    assert reasoning.strip() == "Let me think </thi about it."
    assert answer.strip() == "**Four.**"
    assert "</think>" not in answer
    final = events[-1]
    assert isinstance(final, Finished)
    assert final.reason == "stop"
    assert final.usage is not None
    assert final.usage.completion_tokens > 0


async def test_request_follows_deepseek_guidance(fake_vllm: FakeVLLM) -> None:
    client = client_for(fake_vllm)
    try:
        await collect(client, HELLO)
    finally:
        await client.close()
    body = fake_vllm.requests[-1]
    assert body["model"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert body["temperature"] == 0.6
    assert body["top_p"] == 0.95
    assert body["stream"] is True
    assert all(m["role"] != "system" for m in body["messages"])


async def test_model_info_reports_context_length(fake_vllm_factory: FakeVLLMFactory) -> None:
    fake = await fake_vllm_factory(max_model_len=2048)
    client = client_for(fake)
    try:
        info = await client.model_info()
    finally:
        await client.close()
    assert info.id == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
    assert info.max_model_len == 2048


async def test_unknown_configured_model(fake_vllm: FakeVLLM) -> None:
    client = client_for(fake_vllm, model="someone/else")
    try:
        with pytest.raises(ModelNotFound, match="someone/else"):
            await collect(client, HELLO)
    finally:
        await client.close()


async def test_context_too_long_carries_the_numbers(fake_vllm_factory: FakeVLLMFactory) -> None:
    fake = await fake_vllm_factory(max_model_len=300)
    client = client_for(fake)
    try:
        with pytest.raises(ContextTooLong) as caught:
            await collect(client, [ChatMessage("user", "word " * 400)])
    finally:
        await client.close()
    assert caught.value.limit == 300
    assert caught.value.prompt_tokens is not None
    assert caught.value.prompt_tokens > 300


async def test_overloaded_server(fake_vllm: FakeVLLM) -> None:
    fake_vllm.fail_next(503, count=3)
    client = client_for(fake_vllm)
    try:
        with pytest.raises(LLMOverloaded):
            await collect(client, HELLO)
    finally:
        await client.close()


async def test_server_dying_mid_stream_is_unavailable(fake_vllm: FakeVLLM) -> None:
    fake_vllm.die_after(3)
    client = client_for(fake_vllm)
    try:
        with pytest.raises(LLMUnavailable):
            await collect(client, HELLO)
    finally:
        await client.close()


async def test_nothing_listening_fails_fast() -> None:
    client = OpenAICompatibleClient(
        f"http://127.0.0.1:{free_port()}/v1", "EMPTY", timeouts=Timeouts(connect=1)
    )
    try:
        with pytest.raises(LLMUnavailable, match="cannot reach"):
            await collect(client, HELLO)
    finally:
        await client.close()


async def test_silence_between_tokens_times_out(fake_vllm: FakeVLLM) -> None:
    fake_vllm.stall_after(2, 5.0)
    client = client_for(fake_vllm, timeouts=Timeouts(connect=1, first_token=2, idle=0.3))
    try:
        with pytest.raises(LLMUnavailable, match="stopped sending"):
            await collect(client, HELLO)
    finally:
        await client.close()


async def test_closing_the_stream_aborts_the_request(fake_vllm_factory: FakeVLLMFactory) -> None:
    fake = await fake_vllm_factory(token_interval=0.02)
    client = client_for(fake)
    try:
        stream = client.stream(HELLO, SamplingParams(max_tokens=256))
        async for _ in stream:
            break
        await stream.aclose()
        await eventually(lambda: fake.aborted > 0, what="the fake to notice the close")
    finally:
        await client.close()
    assert fake.aborted == 1


async def test_local_token_count_equals_the_servers(fake_vllm: FakeVLLM) -> None:
    counter = default_counter()
    conversation = [
        ChatMessage("user", "Hello, world! 你好 🎉"),
        ChatMessage("assistant", "Hi. ```python\nprint('x')\n```"),
        ChatMessage("user", "  spaces  and\n\nnewlines\t"),
    ]
    users = [m for m in conversation if m.role == "user"]
    answers = [m for m in conversation if m.role == "assistant"]
    local = prompt_tokens(
        sum(counter.count(m.content) for m in users),
        sum(counter.count(m.content) for m in answers),
        len(users),
        len(answers),
    )
    client = client_for(fake_vllm)
    try:
        assert await client.tokenize(conversation) == local
    finally:
        await client.close()


class RawServer:
    """An HTTP server answering every path from a fixed table: a server that is not vLLM."""

    def __init__(self, answers: dict[str, tuple[str, bytes]]) -> None:
        self._answers = answers
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        path = (await reader.readline()).split()[1].decode()
        while (await reader.readline()).strip():
            pass  # the rest of the head; bodies are never needed
        kind, body = self._answers[path]
        writer.write(
            f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\nconnection: close\r\n\r\n".encode() + body
        )
        await writer.drain()
        writer.close()


MODELS = ("application/json", b'{"object": "list", "data": [{"id": "m", "object": "model"}]}')


@pytest.mark.parametrize("garbage", [b"data: {not json\n\n", b"data: [1, 2]\n\n"])
async def test_a_garbled_stream_is_a_model_error_not_a_crash(garbage: bytes) -> None:
    answers = {"/v1/models": MODELS, "/v1/chat/completions": ("text/event-stream", garbage)}
    async with RawServer(answers) as base_url:
        client = OpenAICompatibleClient(base_url, "EMPTY")
        try:
            with pytest.raises(LLMError, match="stream chunk"):
                await collect(client, HELLO)
        finally:
            await client.close()


@pytest.mark.parametrize(
    "listing",
    [("text/html", b"<html>Welcome to nginx!</html>"), ("application/json", b'{"data": 3}')],
)
async def test_a_base_url_that_is_not_a_model_server_is_named(listing: tuple[str, bytes]) -> None:
    async with RawServer({"/v1/models": listing}) as base_url:
        client = OpenAICompatibleClient(base_url, "EMPTY")
        try:
            with pytest.raises(LLMError, match="OpenAI-compatible"):
                await collect(client, HELLO)
        finally:
            await client.close()
