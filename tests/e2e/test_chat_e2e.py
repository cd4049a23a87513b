"""`parley chat` and ChatService against the real vLLM (scripted tiny model) and a real Redis.

The scripted model answers every prompt with SCRIPTED_REASONING, ``</think>`` and SCRIPTED_ANSWER,
so what a user sees can be asserted exactly. The terminal chat runs as a subprocess, like a user
piping lines into it; the tests that must act while an answer streams (stop it, kill the server)
run ChatService in-process and watch the real model stream through a thin tap.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from bots.model.serve import ServeError
from bots.runtime import Runtime, open_runtime
from core.conversation import ConversationKey, IncomingMessage, Role
from core.errors import LLMUnavailable
from core.llm.client import LLMClient, ModelInfo
from core.llm.events import (
    ChatMessage,
    Finished,
    ReasoningDelta,
    SamplingParams,
    StreamEvent,
    TextDelta,
)
from core.phrases import Phrases
from core.results import Outcome
from core.settings import CoreSettings
from core.sink import SinkLimits
from core.store.keys import KeySpace
from core.tokens import (
    ASSISTANT_OVERHEAD,
    USER_OVERHEAD,
    QwenTokenCounter,
    prompt_tokens,
    qwen_encoding,
)
from tests.e2e.vllm_server import RealVllm, in_ci, start_vllm_server
from tests.services import RedisServer
from tests.support import commands
from tests.support.sinks import RecordingSink
from tests.support.tcp_proxy import HoldingProxy
from tests.support.timing import patient
from tools.test_model_script import SCRIPTED_ANSWER, SCRIPTED_REASONING

pytestmark = pytest.mark.vllm

ADA = ConversationKey("terminal", "local", "ada")
REASONING_MARK = "Parley's scripted check"  # a phrase only the reasoning contains
UNAVAILABLE = LLMUnavailable.user_message
FINISHED = "vllm:request_success_total"  # requests that ended (stop, length, …), not aborted
RUNNING = "vllm:num_requests_running"
PROMPT_TOKENS = "vllm:prompt_tokens_total"  # every prompt token the server has taken

assert REASONING_MARK in SCRIPTED_REASONING
assert REASONING_MARK not in SCRIPTED_ANSWER


# -- helpers ------------------------------------------------------------------------------------


def chat_env(
    base_url: str, redis_server: RedisServer, tmp_path: Path, **extra: str
) -> dict[str, str]:
    """Environment for a `parley chat` run against the real vLLM and the test Redis."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LLM_", "REDIS_", "SHOW_REASONING", "BUSY_POLICY", "HISTORY_"))
    }
    env.update(
        LLM_BASE_URL=base_url,
        REDIS_URL=redis_server.url,
        DATA_DIR=str(tmp_path),
        LLM_RETRIES="0",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


async def run_chat(env: dict[str, str], stdin: bytes, user: str = "ada") -> tuple[str, str, int]:
    """`python -m bots chat` with ``stdin`` piped in (not a TTY: one final answer per line)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "chat", "--user", user,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    return out.decode(), err.decode(), process.returncode or 0


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


async def redis_dump(client: aioredis.Redis) -> dict[str, list[bytes]]:
    """Every key in Redis with its value(s) as raw bytes, whatever the type."""
    dump: dict[str, list[bytes]] = {}
    async for raw_key in client.scan_iter(count=500):
        key = _raw(raw_key).decode()
        kind = _raw(await client.type(key)).decode()
        values: list[object]
        if kind == "list":
            values = list(await client.lrange(key, 0, -1))
        elif kind == "string":
            values = [await client.get(key)]
        elif kind == "hash":
            values = [part for pair in (await client.hgetall(key)).items() for part in pair]
        elif kind == "set":
            values = list(await client.smembers(key))
        elif kind == "zset":
            values = list(await client.zrange(key, 0, -1))
        else:
            values = [kind]
        dump[key] = [_raw(v) for v in values]
    return dump


async def stored_history(
    client: aioredis.Redis, key: ConversationKey = ADA
) -> list[dict[str, Any]]:
    """A conversation's history exactly as stored."""
    raws = await client.lrange(KeySpace().history(key), 0, -1)
    return [orjson.loads(raw) for raw in raws]


def sink() -> RecordingSink:
    """A messenger-like sink with fast pacing."""
    return RecordingSink(SinkLimits(max_length=4000, min_interval=0.02))


def message(text: str, key: ConversationKey = ADA) -> IncomingMessage:
    return IncomingMessage(key, text, user_id=key.user)


def settings_for(base_url: str, redis_server: RedisServer, **overrides: Any) -> CoreSettings:
    return CoreSettings(
        _env_file=None,
        llm_base_url=base_url,
        redis_url=redis_server.url,
        llm_retries=0,
        quota_messages_per_minute=0,  # no rate quota: these tests send fast on purpose
        llm_first_token_timeout=30,
        llm_idle_timeout=15,
        lock_lease_seconds=5,
        **overrides,
    )


EventHook = Callable[[StreamEvent], Awaitable[None]]


@dataclass
class TappedLLM:
    """The real model client, recording each request and showing each event to a hook first."""

    inner: LLMClient
    hook: EventHook | None = None
    requests: list[list[ChatMessage]] = field(default_factory=list)
    events: list[StreamEvent] = field(default_factory=list)

    def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, affinity: str = ""
    ) -> AsyncIterator[StreamEvent]:
        self.requests.append(list(messages))
        return self._tap(self.inner.stream(messages, params, affinity=affinity))

    async def _tap(self, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        try:
            async for event in events:
                self.events.append(event)
                if self.hook is not None:
                    await self.hook(event)
                yield event
        finally:
            # Cancelled inside the hook, the model stream must still be closed (as it is when
            # cancelled inside it): that is what makes vLLM abort the request.
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()

    async def model_info(self, *, affinity: str = "") -> ModelInfo:
        return await self.inner.model_info(affinity=affinity)


def tap(runtime: Runtime, hook: EventHook | None = None) -> TappedLLM:
    """Put a tap between the runtime's chat service and its real model client."""
    tapped = TappedLLM(runtime.service.runner.answerer.llm, hook)
    runtime.service.runner.answerer.llm = tapped
    return tapped


async def metric(http: aiohttp.ClientSession, root_url: str, name: str, **labels: str) -> float:
    """One sample of vLLM's Prometheus /metrics (summed over the lines that match the labels)."""
    async with http.get(f"{root_url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def health(http: aiohttp.ClientSession, root_url: str) -> int:
    async with http.get(f"{root_url}/health") as resp:
        return resp.status


def local_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    """Parley's own count of a prompt (what vLLM must report as usage.prompt_tokens)."""
    counter = QwenTokenCounter(qwen_encoding())
    users = [m.content for m in messages if m.role == "user"]
    answers = [m.content for m in messages if m.role == "assistant"]
    return prompt_tokens(
        sum(map(counter.count, users)), sum(map(counter.count, answers)), len(users), len(answers)
    )


# -- `parley chat` as a subprocess --------------------------------------------------------------


async def test_parley_chat_answers_each_line_remembers_and_stores_no_reasoning(
    real_vllm_server: RealVllm,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    env = chat_env(real_vllm_server.base_url, redis_server, tmp_path)
    root = real_vllm_server.root_url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        before = await metric(http, root, PROMPT_TOKENS)
        out1, err1, code1 = await run_chat(env, b"My name is Ada.\n")
        middle = await metric(http, root, PROMPT_TOKENS)
        # A second process: only Redis connects it to the first.
        out2, err2, code2 = await run_chat(env, b"What is my name?\n\nAnd once more?\n")
        after = await metric(http, root, PROMPT_TOKENS)
    assert (code1, code2) == (0, 0), err1 + err2
    assert "Traceback" not in err1 + err2
    # Default SHOW_REASONING (progress): each line gets exactly the answer, no reasoning.
    assert out1.splitlines() == [SCRIPTED_ANSWER]
    assert out2.splitlines() == [SCRIPTED_ANSWER, SCRIPTED_ANSWER]  # the blank line is skipped

    history = await stored_history(redis_client)
    texts = [str(h["c"]) for h in history]
    assert texts == [
        "My name is Ada.", SCRIPTED_ANSWER,
        "What is my name?", SCRIPTED_ANSWER,
        "And once more?", SCRIPTED_ANSWER,
    ]  # fmt: skip
    assert [h["r"] for h in history] == ["user", "assistant"] * 3
    counter = QwenTokenCounter(qwen_encoding())
    assert [h["t"] for h in history] == [counter.count(t) for t in texts]
    # The server's own accounting: each later prompt carried every earlier turn.
    sent = [ChatMessage(str(h["r"]), str(h["c"])) for h in history]
    assert middle - before == local_prompt_tokens(sent[:1])
    assert after - middle == local_prompt_tokens(sent[:3]) + local_prompt_tokens(sent[:5])

    dump = await redis_dump(redis_client)
    assert dump, "nothing was stored"
    for key, values in dump.items():
        for value in values:
            assert REASONING_MARK.encode() not in value, key
            assert b"</think>" not in value, key


async def test_parley_chat_prints_reasoning_only_when_full(
    real_vllm: str, redis_server: RedisServer, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    env = chat_env(real_vllm, redis_server, tmp_path, SHOW_REASONING="full")
    out, err, code = await run_chat(env, b"Think out loud, please.\n")
    assert code == 0, err
    assert out.splitlines() == [SCRIPTED_REASONING.strip(), SCRIPTED_ANSWER]
    # Shown is not stored: the reasoning never reaches Redis, even in full mode.
    history = await stored_history(redis_client)
    assert [h["c"] for h in history] == ["Think out loud, please.", SCRIPTED_ANSWER]
    for values in (await redis_dump(redis_client)).values():
        assert all(REASONING_MARK.encode() not in v for v in values)


# -- ChatService in-process -----------------------------------------------------------------------


async def test_second_turn_carries_the_first_with_exact_prompt_sizes(
    real_vllm: str, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    settings = settings_for(real_vllm, redis_server, llm_instructions="Answer briefly.")
    async with open_runtime(settings) as rt:
        tapped = tap(rt)
        first_sink, second_sink = sink(), sink()
        first = await rt.service.handle(message("My name is Ada."), first_sink)
        second = await rt.service.handle(message("What is my name?"), second_sink)
        history = await rt.service.runner.store.load(ADA)
    for result, out in ((first, first_sink), (second, second_sink)):
        assert result.outcome is Outcome.ANSWERED
        assert result.saved
        assert result.answer == SCRIPTED_ANSWER
        assert out.texts() == [SCRIPTED_ANSWER]
    sent_first, sent_second = tapped.requests
    assert [(m.role, m.content) for m in sent_second] == [
        ("user", "Answer briefly.\n\nMy name is Ada."),  # instructions ride in the first user turn
        ("assistant", SCRIPTED_ANSWER),
        ("user", "What is my name?"),
    ]
    assert all(m.role != "system" for request in tapped.requests for m in request)
    # vLLM's own usage.prompt_tokens equals Parley's count of what it sent, and the second prompt
    # is larger by exactly the first answer and the new message.
    assert first.usage_prompt == local_prompt_tokens(sent_first)
    assert second.usage_prompt == local_prompt_tokens(sent_second)
    count = QwenTokenCounter(qwen_encoding()).count
    first_turn = ASSISTANT_OVERHEAD + count(SCRIPTED_ANSWER)
    new_message = USER_OVERHEAD + count("What is my name?")
    assert second.usage_prompt - first.usage_prompt == first_turn + new_message
    assert [(m.role, m.content) for m in history] == [
        (Role.USER, "My name is Ada."),
        (Role.ASSISTANT, SCRIPTED_ANSWER),
        (Role.USER, "What is my name?"),
        (Role.ASSISTANT, SCRIPTED_ANSWER),
    ]
    assert [m.tokens for m in history] == [count(m.content) for m in history]


async def test_stop_mid_answer_aborts_on_the_server_and_it_stays_healthy(
    real_vllm_server: RealVllm, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    root = real_vllm_server.root_url
    # The scripted answer takes vLLM ~0.3 s: on a busy machine it could be over before the stop
    # got through, and then nothing is left to abort. Through the proxy, the stopped request
    # asks for a long answer (the model may not end it for 500 tokens, ~5 s): the stop lands
    # while vLLM is still generating, however slowly the bot acts on it.
    proxy = HoldingProxy(int(root.rsplit(":", 1)[1]))
    await proxy.start()
    settings = settings_for(proxy.url + "/v1", redis_server)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        contextlib.AsyncExitStack() as stack,
    ):
        stack.push_async_callback(proxy.stop)
        finished_before = await metric(http, root, FINISHED)
        async with open_runtime(settings) as rt:
            shown: list[str] = []
            stop_requests: list[bool] = []

            async def stop_once_some_answer_is_out(event: StreamEvent) -> None:
                """Like a user's /stop: it lands while the stream waits for its next token."""
                if not isinstance(event, TextDelta) or stop_requests:
                    return
                if len("".join(shown).strip()) >= 10:
                    stop_requests.append(await commands.stop(rt.service, ADA))
                    # Let the service act on it now, before this token is taken (tokens that
                    # arrive in one burst would otherwise all be read in one go).
                    await asyncio.sleep(1)
                shown.append(event.text)

            tapped = tap(rt, stop_once_some_answer_is_out)
            out = sink()
            proxy.amend_request(b"POST /v1/chat/completions", {"min_tokens": 500})
            stopped = await rt.service.handle(message("Tell me everything."), out)
            assert proxy.amended == 1
            history_after_stop = await rt.service.runner.store.load(ADA)
            stopped_events = list(tapped.events)

            # The server dropped the request (it is no longer running and never finished: vLLM
            # counts requests that end, with any reason, but not aborted ones), and is healthy.
            deadline = time.monotonic() + patient(10)
            while await metric(http, root, RUNNING) > 0:
                assert time.monotonic() < deadline, "the stopped request kept running in vLLM"
                await asyncio.sleep(0.05)
            assert await metric(http, root, FINISHED) == finished_before
            assert await health(http, root) == 200

            again = await rt.service.handle(message("Now all of it, please."), sink())
            history = await rt.service.runner.store.load(ADA)
            finished_after = await metric(http, root, FINISHED)

    assert stop_requests == [True]
    assert stopped.outcome is Outcome.STOPPED
    partial = stopped.answer
    assert partial == "".join(shown).strip()  # exactly what had been shown
    assert len(partial) >= 10
    assert SCRIPTED_ANSWER.startswith(partial)
    assert partial != SCRIPTED_ANSWER
    assert Phrases().stopped in out.texts()[-1]
    assert not any(isinstance(e, Finished) for e in stopped_events)  # cut, not completed
    # What was shown is kept, marked as a whole (stopped) turn.
    assert [(m.role, m.content) for m in history_after_stop] == [
        (Role.USER, "Tell me everything."),
        (Role.ASSISTANT, partial),
    ]
    assert again.outcome is Outcome.ANSWERED
    assert again.answer == SCRIPTED_ANSWER
    assert finished_after == finished_before + 1
    assert len(history) == 4


KILL_TEST = "test_server_killed_mid_answer_says_so_and_saves_no_half_turn"
# vLLM's response headers and SSE events are ~200-300 bytes each: this passes on the role event
# and a few reasoning tokens; the scripted reasoning alone is ~20 tokens (~5 KB of events).
HELD_AFTER_BYTES = 2500


@pytest.fixture(scope="session", autouse=True)
def spare_vllm(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Future[RealVllm] | None]:
    """A second server, for the test that kills one, started alongside the session's server.

    Session-scoped and autouse, it is set up before ``real_vllm_server`` for this module's
    first test, so both servers start at once instead of one after the other (~30 s saved).
    Started only when the kill test is selected, and never with an external or skipped vLLM.
    """
    selected = any(item.name == KILL_TEST for item in request.session.items)
    external = bool(os.environ.get("PARLEY_E2E_VLLM_URL"))
    skipped = os.environ.get("PARLEY_SKIP_VLLM") == "1" and not in_ci()
    if not selected or external or skipped:
        yield None
        return
    log_dir = tmp_path_factory.mktemp("spare-vllm")
    with ThreadPoolExecutor(1, thread_name_prefix="spare-vllm") as pool:
        future = pool.submit(start_vllm_server, None, log_dir)
        try:
            yield future
        finally:
            with contextlib.suppress(Exception):
                future.result().stop()  # idempotent; the kill test stops it too


@pytest.mark.timeout(300)
async def test_server_killed_mid_answer_says_so_and_saves_no_half_turn(
    spare_vllm: Future[RealVllm] | None, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    # A server of its own: the session's server must survive this test.
    if spare_vllm is None:
        pytest.skip("no server of our own to kill (PARLEY_E2E_VLLM_URL or PARLEY_SKIP_VLLM)")
    try:
        server = await asyncio.to_thread(spare_vllm.result)
    except (ServeError, OSError) as exc:
        if in_ci():
            pytest.fail(f"could not start a second real vLLM: {exc}", pytrace=False)
        pytest.skip(f"could not start a second real vLLM: {exc}")
    # The bot reaches the server through a proxy that passes on only the start of the killed
    # reply: the tiny model writes its whole reply in a blink, and on a busy machine all of it
    # could reach the bot's socket before the bot acts on the first token and kills the server.
    proxy = HoldingProxy(int(server.root_url.rsplit(":", 1)[1]))
    await proxy.start()
    try:
        assert server.pid is not None
        settings = settings_for(proxy.url + "/v1", redis_server)
        async with open_runtime(settings) as rt:
            await rt.service.handle(message("Remember this first turn."), sink())
            assert len(await rt.service.runner.store.load(ADA)) == 2
            killed_at: list[int] = []

            async def kill_on_first_reasoning(event: StreamEvent) -> None:
                if isinstance(event, ReasoningDelta) and not killed_at:
                    assert server.pid is not None
                    os.killpg(server.pid, signal.SIGKILL)  # a crash: no goodbye to the client
                    proxy.cut()  # and what was still on its way is lost with it
                    killed_at.append(len(tapped.events))

            tapped = tap(rt, kill_on_first_reasoning)
            out = sink()
            # Headers and a few events: the first reasoning tokens, never the answer.
            proxy.hold_reply_to(b"POST /v1/chat/completions", after=HELD_AFTER_BYTES)
            result = await rt.service.handle(message("And now a long answer."), out)
            history = await rt.service.runner.store.load(ADA)
            # The next message, with the server gone, is told the same and stores nothing.
            later_sink = sink()
            later = await rt.service.handle(message("Are you there?"), later_sink)
            history_later = await rt.service.runner.store.load(ADA)
    finally:
        server.stop()
        await proxy.stop()

    assert proxy.held == 1, "the proxy never saw the request whose reply it was to hold"
    assert killed_at == [1], "the kill did not happen on the first reasoning token"
    assert result.outcome is Outcome.FAILED, (
        f"{result}: had the whole reply already reached this process before the kill?"
    )
    assert isinstance(result.error, LLMUnavailable)
    assert result.answer == ""
    assert not result.saved
    assert out.texts()
    assert UNAVAILABLE in out.texts()[-1]
    assert all(SCRIPTED_ANSWER not in text for text in out.texts())
    assert [(m.role, m.content) for m in history] == [
        (Role.USER, "Remember this first turn."),
        (Role.ASSISTANT, SCRIPTED_ANSWER),
    ]
    assert later.outcome is Outcome.FAILED
    assert UNAVAILABLE in later_sink.texts()[-1]
    assert history_later == history
