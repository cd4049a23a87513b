"""The `</think>` split on the real client path: no reasoning ever reaches the answer.

Without a reasoning parser vLLM sends the model's raw output as ``content``: reasoning, then
``</think>``, then the answer. The product's OpenAICompatibleClient splits it with ThinkSplitter.

* Over HTTP: the fake vLLM in no-parser mode (``reasoning_field="none"``) streams scripted
  replies with random reasoning and answers, token by token (its chunk boundaries are the Qwen
  tokenizer's); the client must yield exactly the reasoning as reasoning and exactly the answer
  as answer. A round trip per example: the count is a share of the profile's.
* In process: the client's SSE parser is fed the same output cut at any character (inside the
  tag, inside a grapheme), between role, empty and usage chunks, as a server could send it.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import unicodedata
from collections.abc import AsyncIterator, Iterator, Sequence

import hypothesis.strategies as st
import orjson
import pytest
from hypothesis import HealthCheck, assume, example, given

from core.llm.client import OpenAICompatibleClient
from core.llm.events import ChatMessage, Finished, ReasoningDelta, SamplingParams, TextDelta
from core.llm.sse import data_payloads
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.fuzz.profiles import profile_settings, scaled_settings
from tests.fuzz.strategies import chunked, cut_points, model_text, on_real_time
from tests.fuzz.watchdog import time_limit
from tests.unit.test_think_splitter import PIECES, expected

CLOSE = "</think>"
# Reasoning and answers: model-like text plus the near-miss tags of the splitter's unit tests.
near_misses = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
parts = st.builds(lambda a, b, c: a + b + c, model_text(25), near_misses, model_text(25))
HTTP_SECONDS = 20.0


def split(events: list[object]) -> tuple[str, str]:
    """All reasoning, all answer, checking that exactly one Finished comes last."""
    assert events, "no events at all"
    assert isinstance(events[-1], Finished), events[-1:]
    assert not any(isinstance(e, Finished) for e in events[:-1])
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, TextDelta))
    kinds = [isinstance(e, TextDelta) for e in events if not isinstance(e, Finished)]
    assert kinds == sorted(kinds), "reasoning after the answer started"
    return reasoning, answer


# -- over HTTP against the fake vLLM -------------------------------------------------------------


@pytest.fixture(scope="module")
def raw_vllm() -> Iterator[FakeVLLM]:
    """One fake vLLM without a reasoning parser, served from its own thread for the module."""
    fake = FakeVLLM(reasoning_field="none", max_model_len=32_768)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake vllm", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(fake.start(), loop).result(10)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


async def ask(fake: FakeVLLM) -> list[object]:
    """One streamed completion through the product's client."""
    client = OpenAICompatibleClient(fake.base_url, "")
    try:
        params = SamplingParams(max_tokens=16_000)
        return [e async for e in client.stream([ChatMessage("user", "hi")], params)]
    finally:
        await client.close()


@scaled_settings(0.2, floor=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts, parts)
@example("Let me think about </thi and </think", "The answer is 4. </think> stays text.")
@example("<think>\n<think> nested", "")
@example("", "👩‍💻 שלום مرحبا e\u0301")
def test_no_reasoning_in_the_answer_over_http(
    raw_vllm: FakeVLLM, reasoning: str, answer: str
) -> None:
    assume(CLOSE not in reasoning)  # the model's reasoning ends at its first </think>
    raw_vllm.script(Reply(reasoning, answer))
    events: list[object] = []

    async def main() -> None:
        events.extend(await ask(raw_vllm))

    with time_limit(HTTP_SECONDS, "one streamed completion"):
        on_real_time(main)

    # What the fake model emits after the template's "<think>\n" (the fake tokenizes NFC text).
    emitted = unicodedata.normalize("NFC", reasoning + "\n") + CLOSE
    emitted += unicodedata.normalize("NFC", "\n\n" + answer)
    want_reasoning, want_answer = expected(emitted)
    got_reasoning, got_answer = split(events)
    assert got_answer == want_answer, "the answer is not exactly the model's answer"
    assert got_reasoning == want_reasoning
    if reasoning.strip() and reasoning.strip() not in answer:
        assert reasoning.strip() not in got_answer, "reasoning leaked into the answer"


def test_unicode_line_separators_in_the_answer_arrive_intact(raw_vllm: FakeVLLM) -> None:
    raw_vllm.script(Reply("plan", "one\u2028two\x85three\u2029"))
    events: list[object] = []

    async def main() -> None:
        events.extend(await ask(raw_vllm))

    on_real_time(main)
    assert split(events) == ("plan\n", "\n\none\u2028two\x85three\u2029")


# -- in process: the client's SSE parser, output cut anywhere -----------------------------------


def sse(chunks: list[str], fillers: list[int]) -> list[str]:
    """SSE lines as vLLM sends them: a role chunk, content deltas (some empty), usage, [DONE]."""

    def line(payload: object) -> str:
        return "data: " + orjson.dumps(payload).decode()

    def choice(delta: dict[str, str], finish: str | None = None) -> dict[str, object]:
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    lines = [line(choice({"role": "assistant", "content": ""})), ""]
    for index, chunk in enumerate(chunks):
        if index in fillers:
            lines.append(line(choice({})))  # vLLM sends empty deltas now and then
        lines.append(line(choice({"content": chunk})))
    lines.append(line(choice({"content": ""}, "stop")))
    lines.append(line({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 9}}))
    lines.append("data: [DONE]")
    return lines


@pytest.fixture(scope="module")
def parser() -> Iterator[OpenAICompatibleClient]:
    """A client whose SSE parser the examples share (it never connects anywhere)."""
    client = OpenAICompatibleClient("http://127.0.0.1:9/v1", "")
    yield client
    on_real_time(client.close)


async def parse(
    client: OpenAICompatibleClient, lines: list[str], wire_cuts: Sequence[int] = ()
) -> list[object]:
    """The product client's own SSE parsing, without a network, the bytes cut anywhere."""
    wire = "".join(f"{line}\r\n\r\n" if "[DONE]" in line else f"{line}\n\n" for line in lines)
    data = wire.encode()
    bounds = [0, *sorted({cut % (len(data) + 1) for cut in wire_cuts}), len(data)]

    async def feed() -> AsyncIterator[bytes]:
        for start, end in itertools.pairwise(bounds):
            yield data[start:end]

    return [event async for event in client._events(data_payloads(feed()))]


@profile_settings(quick=150, deadline=None)
@given(
    parts,
    parts,
    cut_points,
    st.lists(st.integers(0, 40), max_size=5),
    st.lists(st.integers(0, 10_000), max_size=20),
)
@example("plan</thi", "answer", [len("plan</thi") + 1, len("plan</thi") + 3], [], [])
@example("x", "y", list(range(20)), [0, 1, 2], list(range(0, 400, 7)))  # one character per chunk
@example("a\u2028b", "c\r\x85d\u2029", [1, 2], [], list(range(300)))  # breaks JSON leaves as is
def test_no_reasoning_in_the_answer_whatever_the_chunking(
    parser: OpenAICompatibleClient,
    reasoning: str,
    answer: str,
    cuts: list[int],
    fillers: list[int],
    wire_cuts: list[int],
) -> None:
    assume(CLOSE not in reasoning)
    emitted = reasoning + "\n" + CLOSE + "\n\n" + answer
    events: list[object] = []

    async def main() -> None:
        events.extend(await parse(parser, sse(chunked(emitted, cuts), fillers), wire_cuts))

    on_real_time(main)
    assert split(events) == expected(emitted)
