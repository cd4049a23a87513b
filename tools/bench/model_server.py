"""A lean vLLM-compatible streaming server for benchmarks: cheap enough not to be the bottleneck.

tests.fakes.fake_vllm is the faithful fake (real Qwen tokenisation of every prompt, fault
injection, a 10 ms polling pause per token); at 20,000 tokens per second it would saturate its
own core long before the bot did. This server speaks the same wire format as vLLM with
``--reasoning-parser deepseek_r1`` (chunk JSON, ``delta.reasoning``, a usage chunk, ``[DONE]``)
over raw asyncio HTTP/1.1 with pre-encoded chunks, and stamps when it wrote each stream's first
visible answer token, so the bot's overhead can be measured against the moment the token left.

Run standalone: ``python -m tools.bench.model_server --port N`` (prints ``listening on URL``).
Controls: ``POST /bench/config`` (JSON of ``ModelConfig`` fields; also resets the stamps),
``GET /bench/stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
TAG = re.compile(r"\[chat (-?\d+)\]")

# What the model "writes": Markdown with the things the renderer has to handle.
_REASONING = (
    "Okay, the user asks about pacing edits in a chat bot. Let me think about what limits "
    "apply: one message per second per chat, twenty per minute in groups. "
)
_ANSWER = (
    "Here is the **short** answer: edit at most once per second, and let the *latest* text "
    "win.\n\n- keep reading the model stream while waiting\n- roll over before 4096 UTF-16 "
    "units\n- never lose the final text\n\nFor example `edit_message_text` every second is "
    "fine; a `429` means you went too fast, so wait `retry_after` seconds. "
)
_PIECE = re.compile(r"\s*\S{1,5}|\s+")


def pieces(text: str) -> list[str]:
    """Split text into token-sized pieces (about four characters, like BPE on English)."""
    return _PIECE.findall(text)


@dataclass
class ModelConfig:
    """How every stream behaves until the next ``/bench/config``."""

    first_token_delay: float = 0.0
    token_interval: float = 0.05
    reasoning_tokens: int = 20
    answer_tokens: int = 200
    tokens_per_chunk: int = 1  # vLLM's --stream-interval: tokens sent together
    max_model_len: int = 32768


@dataclass
class Stats:
    """What the server did since the last reset; monotonic times are comparable across
    processes on Linux (CLOCK_MONOTONIC is system-wide)."""

    requests: int = 0
    completed: int = 0
    aborted: int = 0
    tokens: int = 0
    first_answer: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)


def _sse(payload: bytes) -> bytes:
    """One SSE event as one HTTP/1.1 chunk."""
    data = b"data: " + payload + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


class _Encoder:
    """Pre-encodes chunks: per token only a dict lookup, never JSON work on the hot path."""

    def __init__(self) -> None:
        self._head = orjson.dumps(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": MODEL,
            }
        )[:-1]
        self._cache: dict[tuple[str, str], bytes] = {}

    def chunk(self, delta: dict[str, str], finish: str | None = None) -> bytes:
        """A ``chat.completion.chunk`` event."""
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None}
        choice["finish_reason"] = finish
        if finish is not None:
            choice["stop_reason"] = None
        return _sse(self._head + b',"choices":' + orjson.dumps([choice]) + b"}")

    def token(self, kind: str, text: str) -> bytes:
        """A reasoning or content delta, cached by text."""
        key = (kind, text)
        cached = self._cache.get(key)
        if cached is None:
            if len(self._cache) > 50_000:
                self._cache.clear()
            cached = self._cache[key] = self.chunk({kind: text})
        return cached

    def usage(self, prompt: int, completion: int) -> bytes:
        """The final usage chunk (``stream_options.include_usage``)."""
        usage = {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
        }
        return _sse(self._head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}")


_DONE = _sse(b"[DONE]") + b"0\r\n\r\n"
_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)


class ModelServer:
    """Serves /v1/models and streaming /v1/chat/completions; one instance per process."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        self.stats = Stats()
        self.encoder = _Encoder()
        self._reasoning = pieces(_REASONING)
        self._answer = pieces(_ANSWER)

    def plan(self) -> list[tuple[int, bytes]]:
        """One reply's chunks as (index of their last token, encoded chunk): reasoning, then
        the answer, ``tokens_per_chunk`` tokens to a chunk (vLLM's ``--stream-interval``)."""
        cfg = self.config
        tokens = [
            ("reasoning", self._reasoning[i % len(self._reasoning)])
            for i in range(cfg.reasoning_tokens)
        ]
        tokens.append(("content", "\n\n"))
        tokens += [
            ("content", self._answer[i % len(self._answer)])
            for i in range(max(cfg.answer_tokens - 1, 0))
        ]
        chunks: list[tuple[int, bytes]] = []
        step = max(1, cfg.tokens_per_chunk)
        start = 0
        while start < len(tokens):
            kind = tokens[start][0]
            end = start
            while end + 1 < len(tokens) and end + 1 - start < step and tokens[end + 1][0] == kind:
                end += 1
            text = "".join(t for _, t in tokens[start : end + 1])
            chunks.append((end, self.encoder.token(kind, text)))
            start = end + 1
        return chunks

    def configure(self, body: dict[str, Any]) -> None:
        """Apply new settings and reset the stats."""
        names = {f.name for f in fields(ModelConfig)}
        values = {k: v for k, v in body.items() if k in names}
        self.config = ModelConfig(**{**asdict(self.config), **values})
        self.stats = Stats()

    def models(self) -> bytes:
        """vLLM's model list, with max_model_len."""
        return orjson.dumps(
            {
                "object": "list",
                "data": [
                    {
                        "id": MODEL,
                        "object": "model",
                        "created": int(time.time()),
                        "owned_by": "vllm",
                        "root": MODEL,
                        "parent": None,
                        "max_model_len": self.config.max_model_len,
                    }
                ],
            }
        )

    def stats_json(self) -> bytes:
        """Counters, stamps and this process's CPU time."""
        body = asdict(self.stats)
        body["cpu_seconds"] = time.process_time()
        return orjson.dumps(body)


class _Stream:
    """One streaming response, written by timer callbacks on an absolute schedule."""

    def __init__(self, conn: _Connection, server: ModelServer, tag: str, prompt: int) -> None:
        self.conn = conn
        self.server = server
        self.tag = tag
        self.prompt = prompt
        self.chunks = server.plan()
        self.answer_at = server.config.reasoning_tokens + 1  # "\n\n" comes first, unseen
        self.index = 0  # next chunk
        self.sent = 0  # tokens sent so far
        self.interval = server.config.token_interval
        self.loop = asyncio.get_running_loop()
        self.start = self.loop.time() + server.config.first_token_delay

    def begin(self) -> None:
        """Send the headers now, the first chunk after the first-token delay."""
        self.conn.write(_STREAM_HEAD)
        self.loop.call_at(self.start + self.chunks[0][0] * self.interval, self.tick)

    def tick(self) -> None:
        """Write the next chunk; schedule the one after, or finish."""
        conn = self.conn
        if conn.closed:
            self.server.stats.aborted += 1
            return
        stats = self.server.stats
        if self.index == 0:
            conn.write(self.server.encoder.chunk({"role": "assistant", "content": ""}))
        last, data = self.chunks[self.index]
        if self.sent <= self.answer_at <= last and self.tag:
            stats.first_answer[self.tag] = time.monotonic()
        conn.write(data)
        stats.tokens += last + 1 - self.sent
        self.sent = last + 1
        self.index += 1
        if self.index < len(self.chunks):
            due = self.start + self.chunks[self.index][0] * self.interval
            self.loop.call_at(due, self.tick)
            return
        enc = self.server.encoder
        tail = enc.chunk({"content": ""}, "stop") + enc.usage(self.prompt, self.sent + 1)
        conn.write(tail + _DONE)
        stats.completed += 1
        if self.tag:
            stats.done[self.tag] = time.monotonic()
        conn.idle()


class _Connection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive; one request at a time, as HTTP clients without pipelining do."""

    def __init__(self, server: ModelServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        """Write unless the client went away."""
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def idle(self) -> None:
        """The response is complete: handle a request that may already be buffered."""
        self.busy = False
        self._next()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        """Parse one complete request from the buffer, if there is one."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(self.buffer) < end + 4 + length:
            return
        body = self.buffer[end + 4 : end + 4 + length]
        self.buffer = self.buffer[end + 4 + length :]
        method, path, _ = head[0].split(" ", 2)
        self.busy = True
        self._route(method, path.split("?", 1)[0], body)

    def _reply(self, status: int, body: bytes = b"") -> None:
        """A complete JSON response."""
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "OK")
        self.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (status, reason.encode(), len(body), body)
        )
        self.idle()

    def _route(self, method: str, path: str, body: bytes) -> None:
        server = self.server
        if path == "/v1/chat/completions" and method == "POST":
            request = orjson.loads(body)
            if not request.get("stream"):
                self._reply(400, b'{"error":{"message":"only streaming is served"}}')
                return
            messages = request.get("messages") or []
            users = [m.get("content", "") for m in messages if m.get("role") == "user"]
            match = TAG.search(users[-1]) if users else None
            server.stats.requests += 1
            prompt = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 4
            _Stream(self, server, match[1] if match else "", prompt).begin()
        elif path == "/v1/models":
            self._reply(200, server.models())
        elif path == "/health":
            self._reply(200)
        elif path == "/bench/config" and method == "POST":
            server.configure(orjson.loads(body or b"{}"))
            self._reply(200, b"{}")
        elif path == "/bench/stats":
            self._reply(200, server.stats_json())
        else:
            self._reply(404, b'{"error":{"message":"not found"}}')


async def serve(port: int, config: ModelConfig | None = None) -> None:
    """Listen on 127.0.0.1:port until SIGTERM/SIGINT; announce the URL on stdout."""
    server = ModelServer(config)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: _Connection(server), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    bound = listener.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    async with listener:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description="lean vLLM-compatible benchmark server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--token-interval", type=float, default=0.05)
    args = parser.parse_args(argv)
    config = ModelConfig(
        first_token_delay=args.first_token_delay, token_interval=args.token_interval
    )
    asyncio.run(serve(args.port, config))


if __name__ == "__main__":
    main()
