"""The fake vLLM must behave like the real server through the real clients, or tests lie."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from openai import AsyncOpenAI, AsyncStream
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam
from openai.types.completion_usage import CompletionUsage

from tests.fakes.fake_vllm import FakeVLLM, Reply, default_responder
from tests.fakes.r1_template import (
    ADDED_TOKENS,
    encode_prompt,
    encode_text,
    qwen_encoding,
    render_r1_prompt,
)
from tests.support.timing import eventually, patient

if TYPE_CHECKING:
    from tests.fakes.fixtures import FakeVLLMFactory

pytest_plugins = ["tests.fakes.fixtures"]  # registered by the module so assertions get rewritten

REPO = Path(__file__).resolve().parents[2]
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
HI_REASONING = "The user wrote: hi. There are 0 earlier user turns."
HI_ANSWER = "You said: hi"


@dataclass
class Collected:
    """Everything a client saw on one stream, in order."""

    chunks: list[ChatCompletionChunk] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    reasoning: str = ""
    content: str = ""
    finish_reasons: list[str] = field(default_factory=list)
    usage: CompletionUsage | None = None


def _extra(delta: Any) -> dict[str, Any]:
    """Fields the openai types do not declare (vLLM's reasoning) live in model_extra."""
    extra = delta.model_extra
    return dict(extra) if extra else {}


async def collect(
    stream: AsyncStream[ChatCompletionChunk],
    field_name: str = "reasoning",
    into: Collected | None = None,
) -> Collected:
    """Drain a stream, sorting deltas into reasoning and content."""
    seen = into if into is not None else Collected()
    async for chunk in stream:
        seen.chunks.append(chunk)
        if chunk.usage is not None:
            seen.usage = chunk.usage
        for choice in chunk.choices:
            reasoning = _extra(choice.delta).get(field_name)
            if reasoning:
                seen.kinds.append("reasoning")
                seen.reasoning += reasoning
            if choice.delta.content:
                seen.kinds.append("content")
                seen.content += choice.delta.content
            if choice.finish_reason is not None:
                seen.finish_reasons.append(choice.finish_reason)
    return seen


def client_for(fake: FakeVLLM) -> AsyncOpenAI:
    """A real openai client pointed at the fake, without retries so faults surface at once."""
    return AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0, timeout=10)


@pytest_asyncio.fixture
async def client(fake_vllm: FakeVLLM) -> AsyncIterator[AsyncOpenAI]:
    """An openai client for the default fake, closed after the test."""
    async with client_for(fake_vllm) as c:
        yield c


def expected_completion_tokens(reply: Reply) -> int:
    """Reasoning + </think> + answer + EOS, as vLLM counts them."""
    reasoning = len(encode_text(reply.reasoning + "\n"))
    return reasoning + 1 + len(encode_text("\n\n" + reply.answer)) + 1


async def test_stream_sends_role_then_reasoning_then_content_then_usage(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model=fake_vllm.model, messages=HI, stream=True, stream_options={"include_usage": True}
    )
    seen = await collect(stream)

    first = seen.chunks[0].choices[0].delta
    assert (first.role, first.content) == ("assistant", "")
    assert seen.reasoning == HI_REASONING + "\n"
    assert seen.content == "\n\n" + HI_ANSWER
    assert seen.kinds == sorted(seen.kinds, key=lambda k: k != "reasoning")
    assert "</think>" not in seen.reasoning + seen.content
    assert seen.finish_reasons == ["stop"]
    assert seen.chunks[-1].choices == []
    assert seen.usage is not None
    prompt = len(encode_prompt(render_r1_prompt(HI)))
    completion = expected_completion_tokens(default_responder([{"role": "user", "content": "hi"}]))
    assert (seen.usage.prompt_tokens, seen.usage.completion_tokens) == (prompt, completion)
    assert seen.usage.total_tokens == prompt + completion
    assert {c.id for c in seen.chunks} == {seen.chunks[0].id}
    assert all(c.model == fake_vllm.model for c in seen.chunks)
    assert fake_vllm.completed == 1


async def test_raw_sse_is_one_token_per_chunk_and_keeps_utf8_whole(fake_vllm: FakeVLLM) -> None:
    fake_vllm.script(Reply(reasoning="wave 👋", answer="ok"))
    body = {"model": fake_vllm.model, "messages": HI, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake_vllm.base_url}/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        raw = (await resp.read()).decode()

    events = raw.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert '"object":"chat.completion.chunk"' in events[0]  # compact JSON like pydantic
    reasoning = [e for e in events if '"reasoning":' in e]
    # "wave 👋\n": "wave", " " + 👋 (two byte-level tokens merged into one chunk), "\n"
    assert len(encode_text("wave 👋\n")) == len(reasoning) + 1
    assert '"reasoning":" 👋"' in raw
    assert "\ufffd" not in raw


async def test_default_responder_counts_earlier_user_turns(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "You said: one"},
        {"role": "user", "content": "two"},
        {"role": "assistant", "content": "You said: two"},
        {"role": "user", "content": "three"},
    ]
    reply = await client.chat.completions.create(model=fake_vllm.model, messages=messages)

    message = reply.choices[0].message
    reasoning = _extra(message)["reasoning"]
    assert reasoning == "The user wrote: three. There are 2 earlier user turns.\n"
    assert message.content == "\n\nYou said: three"
    assert reply.choices[0].finish_reason == "stop"
    assert fake_vllm.requests == [{"model": fake_vllm.model, "messages": messages}]


async def test_requests_are_recorded_in_order_including_failures(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    fake_vllm.fail_next(503)
    with pytest.raises(openai.InternalServerError):
        await client.chat.completions.create(model=fake_vllm.model, messages=HI)
    stream = await client.chat.completions.create(
        model=fake_vllm.model,
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        max_tokens=7,
        temperature=0.6,
    )
    await collect(stream)

    assert [r["messages"][0]["content"] for r in fake_vllm.requests] == ["hi", "x"]
    assert fake_vllm.requests[1]["stream"] is True
    assert fake_vllm.requests[1]["max_tokens"] == 7
    assert fake_vllm.requests[1]["temperature"] == 0.6


async def test_script_is_used_fifo_before_the_responder(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    fake_vllm.script(Reply("first thoughts", "first"), Reply("", "second"))
    answers = []
    for _ in range(3):
        reply = await client.chat.completions.create(model=fake_vllm.model, messages=HI)
        message = reply.choices[0].message
        answers.append((_extra(message)["reasoning"], message.content))

    assert answers == [
        ("first thoughts\n", "\n\nfirst"),
        ("\n", "\n\nsecond"),
        (HI_REASONING + "\n", "\n\n" + HI_ANSWER),
    ]


async def test_prompt_over_context_gets_vllms_exact_400(fake_vllm_factory: FakeVLLMFactory) -> None:
    fake = await fake_vllm_factory(max_model_len=32)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "word " * 40}]
    prompt = len(encode_prompt(render_r1_prompt(messages)))
    assert prompt > 32
    expected = {
        "error": {
            "message": (
                "This model's maximum context length is 32 tokens. However, your prompt contains "
                f"at least {prompt} input tokens, which exceeds this limit even without any "
                "output tokens. Please reduce the length of the input prompt. "
                f"(parameter=input_tokens, value={prompt})"
            ),
            "type": "BadRequestError",
            "param": "input_tokens",
            "code": 400,
        }
    }
    async with client_for(fake) as c:
        with pytest.raises(openai.BadRequestError) as caught:
            await c.chat.completions.create(model=fake.model, messages=messages, stream=True)
    assert caught.value.status_code == 400
    assert caught.value.body == expected["error"]

    body = {"model": fake.model, "messages": messages, "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}/chat/completions", json=body) as resp,
    ):
        assert resp.status == 400
        assert await resp.json() == expected


async def test_prompt_that_fits_exactly_is_accepted(fake_vllm_factory: FakeVLLMFactory) -> None:
    prompt = len(encode_prompt(render_r1_prompt(HI)))
    fake = await fake_vllm_factory(max_model_len=prompt + 1)
    async with client_for(fake) as c:
        reply = await c.chat.completions.create(model=fake.model, messages=HI)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 1


async def test_generation_is_cut_at_the_remaining_context(
    fake_vllm_factory: FakeVLLMFactory,
) -> None:
    prompt = len(encode_prompt(render_r1_prompt(HI)))
    fake = await fake_vllm_factory(max_model_len=prompt + 5)
    async with client_for(fake) as c:
        stream = await c.chat.completions.create(
            model=fake.model,
            messages=HI,
            stream=True,
            max_tokens=1000,
            stream_options={"include_usage": True},
        )
        seen = await collect(stream)

    assert seen.finish_reasons == ["length"]
    assert seen.usage is not None
    assert seen.usage.completion_tokens == 5
    assert seen.reasoning == qwen_encoding().decode(encode_text(HI_REASONING)[:5])
    assert seen.content == ""


async def test_max_tokens_counts_reasoning_and_answer(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    reasoning_tokens = len(encode_text(HI_REASONING + "\n"))
    # Budget ends on </think>: nothing visible, vLLM sends an empty delta with the finish reason.
    stream = await client.chat.completions.create(
        model=fake_vllm.model, messages=HI, stream=True, max_tokens=reasoning_tokens + 1
    )
    seen = await collect(stream)
    last = seen.chunks[-1].choices[0]
    assert (last.finish_reason, last.delta.content, _extra(last.delta)) == ("length", None, {})
    assert (seen.reasoning, seen.content) == (HI_REASONING + "\n", "")

    reply = await client.chat.completions.create(
        model=fake_vllm.model, messages=HI, max_tokens=reasoning_tokens + 3
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "\n\nYou"  # </think>, "\n\n", "You"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == reasoning_tokens + 3


async def test_unknown_model_gets_404(fake_vllm: FakeVLLM, client: AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    assert caught.value.body == {
        "message": "The model `gpt-4o` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }


async def test_fail_next_returns_the_status_count_times_then_recovers(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    fake_vllm.fail_next(503, count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model=fake_vllm.model, messages=HI, stream=True)
        assert caught.value.status_code == 503
        assert caught.value.body == {
            "message": "The server is overloaded, please try again later.",
            "type": "ServiceUnavailableError",
            "param": None,
            "code": 503,
        }
    fake_vllm.fail_next(429, {"error": {"message": "slow down", "code": 429}})
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=fake_vllm.model, messages=HI)

    reply = await client.chat.completions.create(model=fake_vllm.model, messages=HI)
    assert reply.choices[0].message.content == "\n\n" + HI_ANSWER


async def test_die_after_drops_the_connection_mid_stream(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    fake_vllm.die_after(3)
    seen = Collected()
    stream = await client.chat.completions.create(model=fake_vllm.model, messages=HI, stream=True)
    with pytest.raises(openai.APIConnectionError):
        await collect(stream, into=seen)

    assert seen.kinds == ["reasoning"] * 3
    assert seen.finish_reasons == []
    assert (fake_vllm.killed, fake_vllm.aborted, fake_vllm.completed) == (1, 0, 0)
    # Only that one stream: the next request is served normally.
    reply = await client.chat.completions.create(model=fake_vllm.model, messages=HI)
    assert reply.choices[0].finish_reason == "stop"


async def test_stall_after_goes_silent_then_finishes(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    fake_vllm.stall_after(2, 1.0)
    stream = await client.chat.completions.create(model=fake_vllm.model, messages=HI, stream=True)
    stamps: list[float] = []
    async for chunk in stream:
        if chunk.choices and _extra(chunk.choices[0].delta).get("reasoning"):
            stamps.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert gaps[1] >= 0.95  # client-side stamps; the server paused 1 s after two chunks
    # The other chunks follow at once (milliseconds). These are wall-clock stamps on a machine
    # that may be busy, so the bound only tells "no pause" from the 1 s one.
    assert max(gaps[:1] + gaps[2:]) < patient(0.1)
    assert fake_vllm.completed == 1


async def test_delays_hold_back_the_first_token(fake_vllm_factory: FakeVLLMFactory) -> None:
    fake = await fake_vllm_factory(first_token_delay=0.2, token_interval=0.01)
    async with client_for(fake) as c:
        start = time.monotonic()
        stream = await c.chat.completions.create(model=fake.model, messages=HI, stream=True)
        first: float | None = None
        async for chunk in stream:
            if first is None and chunk.choices and _extra(chunk.choices[0].delta):
                first = time.monotonic() - start
        total = time.monotonic() - start
    assert first is not None
    assert first >= 0.2
    chunks = len(encode_text(HI_REASONING + "\n")) + len(encode_text("\n\n" + HI_ANSWER))
    assert total >= 0.2 + 0.01 * chunks


async def test_client_closing_a_stream_counts_as_aborted(
    fake_vllm_factory: FakeVLLMFactory,
) -> None:
    fake = await fake_vllm_factory(token_interval=0.02)
    async with client_for(fake) as c:
        stream = await c.chat.completions.create(model=fake.model, messages=HI, stream=True)
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 3:
                break
        await stream.close()
        await eventually(lambda: fake.aborted > 0, what="the fake to notice the close")
    assert (fake.aborted, fake.completed, fake.killed) == (1, 0, 0)


async def test_stop_kills_streams_mid_answer_and_restart_serves_again(
    fake_vllm_factory: FakeVLLMFactory,
) -> None:
    fake = await fake_vllm_factory(token_interval=0.01)
    url = fake.base_url
    async with client_for(fake) as c:
        stream = await c.chat.completions.create(model=fake.model, messages=HI, stream=True)
        seen: list[ChatCompletionChunk] = []

        async def read_and_kill_after_three() -> None:
            async for chunk in stream:
                seen.append(chunk)
                if len(seen) == 3:
                    await fake.stop()

        with pytest.raises(openai.APIConnectionError):
            await read_and_kill_after_three()
        assert len(seen) == 3
        assert all(c.choices and c.choices[0].finish_reason is None for c in seen)
        assert (fake.killed, fake.completed) == (1, 0)

        with pytest.raises(openai.APIConnectionError):
            await c.chat.completions.create(model=fake.model, messages=HI)

        await fake.restart()
        assert fake.base_url == url
        reply = await c.chat.completions.create(model=fake.model, messages=HI)
    assert reply.choices[0].message.content == "\n\n" + HI_ANSWER


async def test_tokenize_counts_the_rendered_template(
    fake_vllm: FakeVLLM, client: AsyncOpenAI
) -> None:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are Parley."},
        {"role": "user", "content": "Hello, world!"},
        {"role": "assistant", "content": "hidden</think>\n\nHi there."},
        {"role": "user", "content": "Ça va? 👋"},
    ]
    expected = encode_prompt(render_r1_prompt(messages))
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{fake_vllm.root_url}/tokenize", json={"model": fake_vllm.model, "messages": messages}
        ) as resp:
            chat = await resp.json()
        async with session.post(
            f"{fake_vllm.root_url}/tokenize",
            json={"model": fake_vllm.model, "prompt": "Hello, world!"},
        ) as resp:
            prompt = await resp.json()
        async with session.post(
            f"{fake_vllm.root_url}/tokenize",
            json={
                "model": fake_vllm.model,
                "prompt": "Hello, world!",
                "add_special_tokens": False,
                "return_token_strs": True,
            },
        ) as resp:
            bare = await resp.json()

    assert chat == {
        "count": len(expected),
        "max_model_len": 4096,
        "tokens": expected,
        "token_strs": None,
    }
    assert expected[0] == ADDED_TOKENS["<｜begin▁of▁sentence｜>"]
    assert expected[-3:] == [151645, 151648, 198]  # <｜Assistant｜><think>\n
    assert prompt["tokens"] == [151646, 9707, 11, 1879, 0]
    assert bare["tokens"] == [9707, 11, 1879, 0]
    assert bare["token_strs"] == ["Hello", ",", "Ġworld", "!"]

    reply = await client.chat.completions.create(model=fake_vllm.model, messages=messages)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == chat["count"]


def test_template_follows_the_r1_distill_quirks() -> None:
    rendered = render_r1_prompt(
        [
            {"role": "system", "content": "first"},
            {"role": "system", "content": "second"},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a</think>b</think>\n\nA1"},
            {"role": "user", "content": "q2"},
        ]
    )
    assert rendered == (
        "<｜begin▁of▁sentence｜>second<｜User｜>q1<｜Assistant｜>\n\nA1<｜end▁of▁sentence｜>"
        "<｜User｜>q2<｜Assistant｜><think>\n"
    )
    bare = render_r1_prompt(HI, add_generation_prompt=False)
    assert bare == "<｜begin▁of▁sentence｜><｜User｜>hi"


def test_encoding_uses_the_real_qwen_ids() -> None:
    enc = qwen_encoding()
    assert enc.encode_ordinary("Hello, world!") == [9707, 11, 1879, 0]
    assert enc.n_vocab == 151665
    assert encode_prompt("<think>\n</think>") == [151648, 198, 151649]
    assert encode_text("</think>") != [151649]  # model text never turns into control tokens


async def test_without_reasoning_parser_everything_is_content(
    fake_vllm_factory: FakeVLLMFactory,
) -> None:
    fake = await fake_vllm_factory(reasoning_field="none")
    async with client_for(fake) as c:
        seen = await collect(
            await c.chat.completions.create(model=fake.model, messages=HI, stream=True)
        )
        reply = await c.chat.completions.create(model=fake.model, messages=HI)

    text = f"{HI_REASONING}\n</think>\n\n{HI_ANSWER}"
    assert seen.reasoning == ""
    assert all(not _extra(c.choices[0].delta) for c in seen.chunks if c.choices)
    assert seen.content == text
    assert seen.finish_reasons == ["stop"]
    assert reply.choices[0].message.content == text
    assert _extra(reply.choices[0].message).get("reasoning") is None


async def test_reasoning_content_field_for_older_vllm(fake_vllm_factory: FakeVLLMFactory) -> None:
    fake = await fake_vllm_factory(reasoning_field="reasoning_content")
    async with client_for(fake) as c:
        seen = await collect(
            await c.chat.completions.create(model=fake.model, messages=HI, stream=True),
            field_name="reasoning_content",
        )
    assert seen.reasoning == HI_REASONING + "\n"
    assert seen.content == "\n\n" + HI_ANSWER


async def test_models_health_and_custom_responder(fake_vllm_factory: FakeVLLMFactory) -> None:
    fake = await fake_vllm_factory(
        model="tiny",
        max_model_len=2048,
        responder=lambda msgs: Reply("r", f"{len(msgs)} messages"),
    )
    async with client_for(fake) as c:
        models = await c.models.list()
        reply = await c.chat.completions.create(model="tiny", messages=HI)
    assert [m.id for m in models.data] == ["tiny"]
    assert models.data[0].owned_by == "vllm"
    assert (models.data[0].model_extra or {})["max_model_len"] == 2048
    assert reply.choices[0].message.content == "\n\n1 messages"
    async with aiohttp.ClientSession() as session, session.get(f"{fake.root_url}/health") as resp:
        assert (resp.status, await resp.read()) == (200, b"")


async def test_concurrent_streams_are_independent(fake_vllm_factory: FakeVLLMFactory) -> None:
    fake = await fake_vllm_factory(token_interval=0.005)
    async with client_for(fake) as c:

        async def ask(text: str) -> Collected:
            return await collect(
                await c.chat.completions.create(
                    model=fake.model, messages=[{"role": "user", "content": text}], stream=True
                )
            )

        results = await asyncio.gather(*(ask(f"q{i}") for i in range(4)))
    assert [r.content for r in results] == [f"\n\nYou said: q{i}" for i in range(4)]
    assert fake.completed == 4


async def test_runs_as_a_subprocess_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.fakes.fake_vllm",
        "--port",
        "0",
        "--model",
        "m",
        "--max-model-len",
        "100",
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), patient(10))).decode().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        root = line.removeprefix("listening on ")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{root}/health") as resp:
                assert resp.status == 200
            async with session.get(f"{root}/v1/models") as resp:
                data = (await resp.json())["data"][0]
        assert (data["id"], data["max_model_len"]) == ("m", 100)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), patient(10)) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
