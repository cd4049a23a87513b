"""A fake vLLM OpenAI-compatible server (``--reasoning-parser deepseek_r1``) for fast tests.

It imitates the API shapes recorded in /work/shared/vllm-cpu.md: the same endpoints, error
bodies, SSE chunk layout, token counts (real Qwen BPE over the real R1-Distill chat template) and
context-length rules, plus fault injection (scripted replies, HTTP failures, dropped or stalled
streams, a server killed mid-answer) that a real model server cannot give on demand.

What the fake "model" generates for a request, after the prefilled ``<think>\\n``, is
``Reply.completion_text`` = ``reasoning + "\\n</think>\\n\\n" + answer`` followed by the EOS
token, as the real model does. With the reasoning parser the ``reasoning`` field therefore
carries ``reasoning + "\\n"`` and ``content`` carries ``"\\n\\n" + answer``; ``</think>`` is one
token that is counted but never sent. ``completion_tokens`` counts reasoning, ``</think>``,
answer and the EOS token (when generation stopped on it), like vLLM.

Run standalone: ``python -m tests.fakes.fake_vllm --port N [--model NAME] [--max-model-len N]
[--token-interval S] [--first-token-delay S] [--reasoning-field F]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import operator
import signal
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Literal

import orjson
from aiohttp import web

from tests.fakes.r1_template import (
    EOS_ID,
    THINK_END,
    THINK_END_ID,
    encode_prompt,
    encode_text,
    qwen_encoding,
    render_r1_prompt,
    token_strs,
)
from tests.support.logs import fake_server_logger

DEFAULT_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"

ReasoningField = Literal["reasoning", "reasoning_content", "none"]

_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_POLL_S = 0.01  # how often a pause checks whether the connection is gone


@dataclass(frozen=True)
class Reply:
    """What the fake model generates for one request: hidden reasoning and the visible answer."""

    reasoning: str
    answer: str

    @property
    def completion_text(self) -> str:
        """The raw text the model emits after the template's prefilled ``<think>\\n``."""
        return f"{self.reasoning}\n{THINK_END}\n\n{self.answer}"


Responder = Callable[[list[dict[str, str]]], Reply]


def default_responder(messages: list[dict[str, str]]) -> Reply:
    """Echo the last user message so multi-turn tests can see exactly what the server received.

    With ``U`` the content of the last ``user`` message ("" if none) and ``N`` the number of
    user messages before it:

    * reasoning = ``f"The user wrote: {U}. There are {N} earlier user turns."``
    * answer    = ``f"You said: {U}"``

    e.g. for one user message "hi": reasoning "The user wrote: hi. There are 0 earlier user
    turns." and answer "You said: hi" (streamed as reasoning + "\\n" and "\\n\\n" + answer).
    """
    users = [m["content"] for m in messages if m.get("role") == "user"]
    last = users[-1] if users else ""
    earlier = max(len(users) - 1, 0)
    return Reply(
        reasoning=f"The user wrote: {last}. There are {earlier} earlier user turns.",
        answer=f"You said: {last}",
    )


@dataclass(frozen=True)
class _Chunk:
    """One SSE delta the fake will send; ``text`` says whether it counts for die/stall_after."""

    delta: dict[str, str]
    finish_reason: str | None = None
    text: bool = True


@dataclass(frozen=True)
class _Generation:
    """A planned completion: the chunks to stream plus what a non-streaming reply would hold."""

    chunks: list[_Chunk]
    finish_reason: str
    completion_tokens: int
    reasoning: str | None
    content: str | None


def _group_utf8(kind: str, ids: list[int]) -> list[tuple[str, str]]:
    """Split ids into one piece per token, merging tokens until their bytes are valid UTF-8."""
    enc = qwen_encoding()
    pieces: list[tuple[str, str]] = []
    pending = b""
    for i in ids:
        pending += enc.decode_single_token_bytes(i)
        try:
            text = pending.decode("utf-8")
        except UnicodeDecodeError:
            continue
        pieces.append((kind, text))
        pending = b""
    if pending:  # cut mid-character by max_tokens: the tokens were generated, nothing shows
        pieces.append((kind, ""))
    return pieces


def _plan(reply: Reply, budget: int, field: ReasoningField) -> _Generation:
    """Tokenize a reply the way the model would emit it and cut it at the token budget."""
    stream: list[tuple[str, int]] = [("reasoning", i) for i in encode_text(reply.reasoning + "\n")]
    stream.append(("think_end", THINK_END_ID))
    stream += [("content", i) for i in encode_text("\n\n" + reply.answer)]
    stream.append(("eos", EOS_ID))
    kept = stream[: max(budget, 0)]
    finish = "stop" if kept and kept[-1][0] == "eos" else "length"

    pieces: list[tuple[str, str]] = []
    for kind, group in itertools.groupby(kept, key=operator.itemgetter(0)):
        ids = [token for _, token in group]
        if kind in ("reasoning", "content"):
            pieces += _group_utf8(kind, ids)
        else:
            pieces += [(kind, THINK_END if kind == "think_end" else "")] * len(ids)

    chunks: list[_Chunk] = []
    reasoning_parts: list[str] = []
    content_parts: list[str] = []
    last_piece_sent = False
    delta: dict[str, str]
    for kind, text in pieces:
        last_piece_sent = False
        if kind == "eos":
            chunks.append(_Chunk({"content": ""}, finish_reason="stop", text=False))
            last_piece_sent = True
            continue
        if field != "none" and kind == "think_end":
            continue  # the reasoning parser swallows </think>
        if field != "none" and kind == "reasoning":
            reasoning_parts.append(text)
            delta = {field: text}
        else:
            content_parts.append(text)
            delta = {"content": text}
        if text:
            chunks.append(_Chunk(delta))
            last_piece_sent = True
    if finish == "length":
        if last_piece_sent:
            chunks[-1] = dataclasses.replace(chunks[-1], finish_reason="length")
        else:  # vLLM sends an empty delta when the last token showed nothing
            chunks.append(_Chunk({}, finish_reason="length", text=False))
    return _Generation(
        chunks=chunks,
        finish_reason=finish,
        completion_tokens=len(kept),
        reasoning="".join(reasoning_parts) if reasoning_parts else None,
        content="".join(content_parts) or None,
    )


def _phrase(status: int) -> str:
    """The standard reason phrase for a status, or a neutral one for non-standard codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Server"


def _error_body(
    status: int, message: str, err_type: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """Build vLLM's error envelope ``{"error": {message, type, param, code}}``."""
    if err_type is None:
        words = "".join(w.capitalize() for w in _phrase(status).split())
        err_type = words if words.endswith("Error") else words + "Error"
    return {"error": {"message": message, "type": err_type, "param": param, "code": status}}


def _context_message(max_model_len: int, prompt_tokens: int) -> str:
    """vLLM's wording for a prompt that does not fit, verbatim (see vllm-cpu.md)."""
    return (
        f"This model's maximum context length is {max_model_len} tokens. However, your prompt "
        f"contains at least {prompt_tokens} input tokens, which exceeds this limit even without "
        "any output tokens. Please reduce the length of the input prompt. "
        f"(parameter=input_tokens, value={prompt_tokens})"
    )


def _bad_request(message: str, param: str | None = None) -> web.Response:
    """A vLLM-style 400."""
    return _json(_error_body(400, message, "BadRequestError", param), 400)


def _json(body: Any, status: int = 200) -> web.Response:
    """Serialize compactly with raw UTF-8, as vLLM's pydantic responses are."""
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _messages(raw: Any) -> list[dict[str, Any]] | None:
    """Return the request's messages if they are a list of objects, else None."""
    if not isinstance(raw, list) or not all(isinstance(m, dict) for m in raw):
        return None
    return raw


def _plain(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Flatten messages to role/content strings (text parts joined by newlines) for responders."""
    out: list[dict[str, str]] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text = "" if content is None else str(content)
        out.append({"role": str(m.get("role", "")), "content": text})
    return out


class _Gone(Exception):
    """The stream's connection is closed (by the client, or by the fake itself)."""


@dataclass(eq=False)
class _Live:
    """An in-flight chat request whose connection the fake may have to kill."""

    transport: asyncio.Transport
    killed: bool = False

    def kill(self) -> None:
        """Drop the connection now, without finishing the HTTP response."""
        self.killed = True
        self.transport.abort()

    def check(self) -> None:
        """Raise if the connection has gone away."""
        if self.killed or self.transport.is_closing():
            raise _Gone


class FakeVLLM:
    """An in-process fake of vLLM's OpenAI-compatible server with R1-style reasoning output."""

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        max_model_len: int = 4096,
        first_token_delay: float = 0.0,
        token_interval: float = 0.0,
        reasoning_field: ReasoningField = "reasoning",
        responder: Responder | None = None,
    ) -> None:
        """Configure the fake; nothing listens until ``start``."""
        self.model = model
        self.max_model_len = max_model_len
        self.first_token_delay = first_token_delay
        self.token_interval = token_interval
        self.reasoning_field: ReasoningField = reasoning_field
        self.responder: Responder = responder or default_responder
        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []  # beside requests; names lower-cased
        self.aborted = 0
        self.completed = 0
        self.killed = 0
        self.port = 0
        self._created = int(time.time())
        self._script: deque[Reply] = deque()
        self._failures: deque[tuple[int, dict[str, Any]]] = deque()
        self._die_after: int | None = None
        self._stall_after: tuple[int, float] | None = None
        self._live: set[_Live] = set()
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``) clients should use."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """The server root, where vLLM puts /health and /tokenize."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (a free port if 0) and return the ``/v1`` base URL."""
        if self._runner is not None:
            raise RuntimeError("FakeVLLM is already running")
        qwen_encoding()  # load the ranks now so the first request is not 0.2 s slower
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/tokenize", self._tokenize)
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=1.0, logger=fake_server_logger("vllm")
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server  # aiohttp exposes no public accessor for the bound port
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        return self.base_url

    async def stop(self) -> None:
        """Close the listener and cut every in-flight request (no [DONE]), like a killed server."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for live in list(self._live):
            live.kill()
        await runner.cleanup()

    async def restart(self) -> None:
        """Stop (if running) and listen again on the same port; counters and queues are kept."""
        await self.stop()
        await self.start(self.port)

    # -- test controls -----------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies used first-in first-out before falling back to the responder."""
        self._script.extend(replies)

    def fail_next(self, status: int, body: dict[str, Any] | None = None, count: int = 1) -> None:
        """Make the next ``count`` chat requests fail with ``status`` and a vLLM-style body."""
        if body is None:
            if status == HTTPStatus.SERVICE_UNAVAILABLE:
                body = _error_body(status, "The server is overloaded, please try again later.")
            else:
                body = _error_body(status, _phrase(status))
        self._failures.extend([(status, body)] * count)

    def die_after(self, chunks: int) -> None:
        """Make the next stream drop its connection after ``chunks`` reasoning/content chunks."""
        self._die_after = chunks

    def stall_after(self, chunks: int, seconds: float) -> None:
        """Make the next stream go silent for ``seconds`` after ``chunks`` text chunks."""
        self._stall_after = (chunks, seconds)

    # -- helpers -----------------------------------------------------------------------------

    def count_prompt_tokens(self, messages: list[dict[str, Any]]) -> int:
        """Count the prompt as vLLM does: the rendered template incl. the generation prompt."""
        return len(encode_prompt(render_r1_prompt(messages, add_generation_prompt=True)))

    def _model_error(self, body: dict[str, Any]) -> web.Response | None:
        """Return vLLM's 404 if the request names a model this fake does not serve."""
        name = body.get("model")
        if name is None or name == self.model:
            return None
        return _json(
            _error_body(404, f"The model `{name}` does not exist.", "NotFoundError", "model"), 404
        )

    async def _pause(self, seconds: float, live: _Live) -> None:
        """Sleep, noticing promptly if the connection goes away meanwhile."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while True:
            live.check()
            remaining = end - loop.time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, _POLL_S))

    # -- handlers ----------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        """vLLM answers /health with 200 and an empty body."""
        return web.Response(status=200)

    async def _models(self, request: web.Request) -> web.Response:
        """List the one served model with vLLM's fields, including max_model_len."""
        return _json(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.model,
                        "object": "model",
                        "created": self._created,
                        "owned_by": "vllm",
                        "root": self.model,
                        "parent": None,
                        "max_model_len": self.max_model_len,
                        "permission": [
                            {
                                "id": f"modelperm-{uuid.uuid4().hex}",
                                "object": "model_permission",
                                "created": self._created,
                                "allow_create_engine": False,
                                "allow_sampling": True,
                                "allow_logprobs": True,
                                "allow_search_indices": False,
                                "allow_view": True,
                                "allow_fine_tuning": False,
                                "organization": "*",
                                "group": None,
                                "is_blocking": False,
                            }
                        ],
                    }
                ],
            }
        )

    async def _read_json(self, request: web.Request) -> dict[str, Any] | web.Response:
        """Parse a JSON object body or build vLLM's 400 for anything else."""
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return _bad_request(f"Invalid JSON body: {exc}")
        if not isinstance(body, dict):
            return _bad_request("The body must be a JSON object.")
        return body

    async def _tokenize(self, request: web.Request) -> web.Response:
        """Tokenize messages (template applied) or a raw prompt, with vLLM's response shape."""
        body = await self._read_json(request)
        if isinstance(body, web.Response):
            return body
        if (error := self._model_error(body)) is not None:
            return error
        if "messages" in body:
            messages = _messages(body["messages"])
            if messages is None:
                return _bad_request("messages must be a list", "messages")
            text = render_r1_prompt(messages, bool(body.get("add_generation_prompt", True)))
            special = bool(body.get("add_special_tokens", False))
            ids = encode_prompt(text, add_special_tokens=special)
        elif isinstance(body.get("prompt"), str):
            ids = encode_prompt(
                body["prompt"], add_special_tokens=bool(body.get("add_special_tokens", True))
            )
        else:
            return _bad_request("Either messages or prompt is required")
        return _json(
            {
                "count": len(ids),
                "max_model_len": self.max_model_len,
                "tokens": ids,
                "token_strs": token_strs(ids) if body.get("return_token_strs") else None,
            }
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        """Serve /v1/chat/completions: validate like vLLM, then stream or answer at once."""
        body = await self._read_json(request)
        if isinstance(body, web.Response):
            return body
        self.requests.append(body)
        self.request_headers.append({k.lower(): v for k, v in request.headers.items()})
        if self._failures:
            status, failure = self._failures.popleft()
            return _json(failure, status)
        if (error := self._model_error(body)) is not None:
            return error
        messages = _messages(body.get("messages"))
        if not messages:
            return _bad_request("messages must be a non-empty list", "messages")
        prompt_tokens = self.count_prompt_tokens(messages)
        if prompt_tokens > self.max_model_len:
            return _bad_request(_context_message(self.max_model_len, prompt_tokens), "input_tokens")
        room = self.max_model_len - prompt_tokens
        requested = body.get("max_completion_tokens", body.get("max_tokens"))
        if requested is not None and (not isinstance(requested, int) or requested < 1):
            return _bad_request(f"max_tokens must be at least 1, got {requested}.", "max_tokens")
        budget = room if requested is None else min(requested, room)
        reply = self._script.popleft() if self._script else self.responder(_plain(messages))
        generation = _plan(reply, budget, self.reasoning_field)

        transport = request.transport
        if transport is None:
            return web.Response(status=499)
        live = _Live(transport)
        self._live.add(live)
        try:
            if body.get("stream"):
                options = body.get("stream_options") or {}
                usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
                return await self._stream(request, live, generation, prompt_tokens, usage)
            return await self._complete(live, generation, prompt_tokens)
        finally:
            self._live.discard(live)

    def _usage(self, generation: _Generation, prompt_tokens: int) -> dict[str, int]:
        """vLLM's usage block."""
        return {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens + generation.completion_tokens,
            "completion_tokens": generation.completion_tokens,
        }

    async def _complete(
        self, live: _Live, generation: _Generation, prompt_tokens: int
    ) -> web.StreamResponse:
        """Answer a non-streaming request after the time the tokens would have taken."""
        steps = max(len(generation.chunks) - 1, 0)
        try:
            await self._pause(self.first_token_delay + self.token_interval * steps, live)
        except _Gone:
            self._count_gone(live)
            return web.Response(status=499)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": generation.content,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": [],
        }
        field = "reasoning" if self.reasoning_field == "none" else self.reasoning_field
        message[field] = generation.reasoning
        self.completed += 1
        return _json(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": generation.finish_reason,
                        "stop_reason": None,
                    }
                ],
                "service_tier": None,
                "system_fingerprint": None,
                "usage": {**self._usage(generation, prompt_tokens), "prompt_tokens_details": None},
                "prompt_logprobs": None,
                "kv_transfer_params": None,
            }
        )

    def _count_gone(self, live: _Live) -> None:
        """Book a stream that ended early: killed by the fake, or aborted by the client."""
        if live.killed:
            self.killed += 1
        else:
            self.aborted += 1

    async def _stream(
        self,
        request: web.Request,
        live: _Live,
        generation: _Generation,
        prompt_tokens: int,
        include_usage: bool,
    ) -> web.StreamResponse:
        """Send the SSE stream chunk by chunk, honouring delays and injected faults."""
        die_after, self._die_after = self._die_after, None
        stall, self._stall_after = self._stall_after, None
        ident = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        response = web.StreamResponse(status=200, headers=_SSE_HEADERS)

        async def send(payload: dict[str, Any] | str) -> None:
            live.check()
            data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
            await response.write(f"data: {data}\n\n".encode())

        def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
            choice: dict[str, Any] = {
                "index": 0,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish,
            }
            if finish is not None:
                choice["stop_reason"] = None
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": [choice],
            }

        sent = 0
        try:
            await response.prepare(request)
            await self._pause(self.first_token_delay, live)
            await send(chunk({"role": "assistant", "content": ""}))
            if die_after is not None and die_after <= 0:
                live.kill()
                raise _Gone
            for index, item in enumerate(generation.chunks):
                if index:
                    await self._pause(self.token_interval, live)
                await send(chunk(item.delta, item.finish_reason))
                if not item.text:
                    continue
                sent += 1
                if die_after is not None and sent == die_after:
                    live.kill()
                    raise _Gone
                if stall is not None and sent == stall[0]:
                    await self._pause(stall[1], live)
            if include_usage:
                await send(
                    {
                        "id": ident,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": self.model,
                        "choices": [],
                        "usage": self._usage(generation, prompt_tokens),
                    }
                )
            await send("[DONE]")
        except (_Gone, ConnectionError):
            self._count_gone(live)
            return response
        self.completed += 1
        return response


@contextlib.asynccontextmanager
async def running_fake_vllm(*, port: int = 0, **kwargs: Any) -> AsyncIterator[FakeVLLM]:
    """Start a FakeVLLM for the duration of an ``async with`` block and always stop it."""
    fake = FakeVLLM(**kwargs)
    await fake.start(port)
    try:
        yield fake
    finally:
        await fake.stop()


async def _serve(args: argparse.Namespace) -> None:
    """Run the fake until SIGTERM or SIGINT, announcing the URL on stdout first."""
    fake = FakeVLLM(
        model=args.model,
        max_model_len=args.max_model_len,
        first_token_delay=args.first_token_delay,
        token_interval=args.token_interval,
        reasoning_field=args.reasoning_field,
    )
    await fake.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {fake.root_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--token-interval", type=float, default=0.0)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument(
        "--reasoning-field", default="reasoning", choices=["reasoning", "reasoning_content", "none"]
    )
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
