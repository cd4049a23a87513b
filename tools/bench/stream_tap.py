"""A loopback HTTP proxy in front of the model server that notes when each stream ended.

Figure 6 measures the final message against the end of the bot's *own* model stream, and the
only place that end is visible without touching Parley is the transport. Parley's
``llm_base_url`` points here; every request (``/v1/chat/completions``, ``/v1/models``,
``/tokenize``, …) is forwarded to the upstream unchanged (method, path and query, headers
without the hop-by-hop ones, body), and the answer is streamed back chunk by chunk as it
arrives (never buffered; compressed bodies stay compressed). Per request it records, in
``time.monotonic`` seconds (CLOCK_MONOTONIC: comparable with the fake platform's stamps in
another process on the same host), when the chunk containing ``data: [DONE]`` was forwarded and
when the body ended, keyed by the ``[chat N]`` tag of the request's last user message.

Run standalone: ``python -m tools.bench.stream_tap --port N [--upstream URL]`` (prints
``listening on URL``). Controls: ``POST /tap/config`` (``{"upstream": "http://host:port"}``;
also forgets the records), ``GET /tap/records`` (``?tag=N`` for one chat's).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from tools.bench.model_server import TAG
from tools.bench.procs import serve_until_signalled

DONE = b"data: [DONE]"
# RFC 9110 §7.6.1 hop-by-hop fields, plus what the client library sets for the new hop itself.
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUEST_SET_BY_CLIENT = frozenset({"host", "content-length"})
# Headers aiohttp's client adds when absent: skipped so the upstream sees what the bot sent.
_AUTO = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


@dataclass
class Forwarded:
    """One forwarded request and when its answer went through (monotonic seconds)."""

    method: str
    path: str
    tag: str  # N from "[chat N]" in the last user message; "" if none
    started: float
    status: int = 0
    first_chunk: float | None = None
    done: float | None = None  # the chunk containing "data: [DONE]" was forwarded
    ended: float | None = None  # the whole body was forwarded
    chunks: int = 0
    bytes: int = 0
    error: str = ""


def tag_of(body: bytes) -> str:
    """The ``[chat N]`` tag of a chat request's last user message, the way the fakes read it."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list):
        return ""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, list):  # OpenAI content parts
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    match = TAG.search(str(content or ""))
    return match[1] if match else ""


def stream_end(records: Iterable[Mapping[str, Any]]) -> float | None:
    """When the last finished completion stream among ``records`` ended: its [DONE], else its
    body's end; None if none finished (``/tokenize`` carries the tag too, so path matters).

    A stream whose [DONE] went out counts even if it then broke: the bot may close its
    connection once it has read [DONE], before the chunked body's terminator arrives.
    """
    ends: list[float] = []
    for r in records:
        if not str(r.get("path", "")).split("?", 1)[0].endswith("/chat/completions"):
            continue
        if r.get("done") is not None:
            ends.append(float(r["done"]))
        elif r.get("ended") is not None and not r.get("error"):
            ends.append(float(r["ended"]))
    return ends[-1] if ends else None


class StreamTap:
    """The proxy: an aiohttp server in front of one upstream, with a client session to it."""

    def __init__(self, upstream: str = "") -> None:
        self.upstream = upstream.rstrip("/")
        self.records: deque[Forwarded] = deque(maxlen=10_000)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; the URL to point a client at (``/v1`` appended for an OpenAI base URL)."""
        # auto_decompress off: a compressed body is passed on as the bytes that came.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            auto_decompress=False,
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.url = f"http://{host}:{server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        """Stop listening and close upstream connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def for_tag(self, tag: str) -> list[dict[str, Any]]:
        """The records of one chat (``[chat N]``), oldest first, as JSON-ready dicts."""
        return [asdict(r) for r in self.records if r.tag == tag]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        """Controls under /tap/; everything else goes upstream."""
        if request.path.startswith("/tap/"):
            return await self._control(request)
        return await self._forward(request)

    async def _control(self, request: web.Request) -> web.Response:
        """/tap/config and /tap/records."""
        if request.path == "/tap/config" and request.method == "POST":
            body: dict[str, Any] = await request.json() if request.can_read_body else {}
            self.upstream = str(body.get("upstream", self.upstream)).rstrip("/")
            self.records.clear()
            return web.json_response({})
        if request.path == "/tap/records":
            tag = request.query.get("tag")
            rows = self.for_tag(tag) if tag is not None else [asdict(r) for r in self.records]
            return web.json_response(rows)
        return web.json_response({"error": "not found"}, status=404)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        """Send the request upstream as it came; stream the answer back as it arrives."""
        assert self._session is not None
        body = await request.read()
        record = Forwarded(request.method, request.path_qs, tag_of(body), time.monotonic())
        self.records.append(record)
        headers = CIMultiDict(
            (k, v)
            for k, v in request.headers.items()
            if k.lower() not in _HOP and k.lower() not in _REQUEST_SET_BY_CLIENT
        )
        skip = [name for name in _AUTO if name not in request.headers]
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body if body else None,
                allow_redirects=False,
                skip_auto_headers=skip,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            record.error = f"upstream unreachable: {exc!r}"
            record.ended = time.monotonic()
            return web.json_response({"error": {"message": record.error}}, status=502)
        async with upstream:
            record.status = upstream.status
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _HOP:
                    response.headers.add(name, value)
            try:
                await response.prepare(request)
                await self._pipe(upstream, response, record)
            except (aiohttp.ClientError, ConnectionError, TimeoutError) as exc:
                # Either side broke (the bot may close as soon as it has read [DONE]): end
                # both, so vLLM aborts a stream nobody reads and a truncated stream reaches the
                # bot broken, never completed by aiohttp's closing chunk.
                record.error = repr(exc)
                upstream.close()
                if request.transport is not None:
                    request.transport.close()
        return response

    @staticmethod
    async def _pipe(
        upstream: aiohttp.ClientResponse, response: web.StreamResponse, record: Forwarded
    ) -> None:
        """Forward each piece as it arrives, noting when the one with [DONE] went out."""
        tail = b""  # the end of the previous piece: [DONE] may straddle two
        async for piece in upstream.content.iter_any():
            await response.write(piece)
            now = time.monotonic()
            record.chunks += 1
            record.bytes += len(piece)
            if record.first_chunk is None:
                record.first_chunk = now
            if record.done is None and DONE in tail + piece:
                record.done = now
            tail = (tail + piece)[-(len(DONE) - 1) :]
        await response.write_eof()
        record.ended = time.monotonic()


async def serve(port: int, upstream: str) -> None:
    """Listen until SIGTERM/SIGINT; announce the URL on stdout."""
    tap = StreamTap(upstream)
    url = await tap.start(port=port)
    try:
        await serve_until_signalled(url)
    finally:
        await tap.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description="timing proxy in front of a model server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", default="", help="e.g. http://127.0.0.1:8000")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
