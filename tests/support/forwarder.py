"""A small round-robin HTTP forwarder on loopback: what a load balancer in front of replicas does.

Each request goes to the next backend in turn, byte for byte (bodies are forwarded unchanged,
so Slack signatures still verify). A backend that refuses the connection is skipped for the
next one, as a load balancer's "next upstream on error" does; when none answers the caller gets
502. Tests may pin one request to a backend with the ``X-Replica`` header (stripped before
forwarding) to deliver the same update to two chosen replicas; every answer names the backend
that served it in ``X-Replica``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from tests.support.logs import fake_server_logger

PIN_HEADER = "X-Replica"
_HOP_BY_HOP = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    }
)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """One request as the forwarder routed it."""

    backend: int  # index into the backends; -1 when no backend answered
    path: str
    status: int
    pinned: bool


class RoundRobinForwarder:
    """Spreads requests over backends (``http://host:port`` roots) in turn."""

    def __init__(self, backends: list[str], *, timeout: float = 10.0) -> None:
        if not backends:
            raise ValueError("at least one backend is needed")
        self.backends = [b.rstrip("/") for b in backends]
        self.records: list[Forwarded] = []
        self.down: set[int] = set()  # backends taken out of rotation by the test
        self._turn = itertools.count()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on loopback; returns the root URL clients should use instead of a backend's."""
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, connector=connector, auto_decompress=False
        )
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=1.0, logger=fake_server_logger("forwarder")
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}"
        return self.url

    async def stop(self) -> None:
        """Stop listening and close connections to the backends."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RoundRobinForwarder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def take_out(self, backend: int) -> None:
        """Stop routing to a backend (a load balancer whose health check failed)."""
        self.down.add(backend)

    def hits(self) -> Counter[int]:
        """Requests each backend answered."""
        return Counter(r.backend for r in self.records if r.backend >= 0)

    def _order(self, pinned: int | None) -> list[int]:
        """Backends to try for one request: the pinned one only, or all from the next in turn."""
        count = len(self.backends)
        if pinned is not None:
            return [pinned % count]
        first = next(self._turn) % count
        order = [(first + i) % count for i in range(count)]
        return [i for i in order if i not in self.down]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        """Send the request on, unchanged, to the next backend that accepts a connection."""
        assert self._session is not None
        raw_pin = request.headers.get(PIN_HEADER)
        pinned = int(raw_pin) if raw_pin is not None and raw_pin.isdigit() else None
        body = await request.read()
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != PIN_HEADER.lower()
        }
        path = request.rel_url.raw_path_qs
        for index in self._order(pinned):
            try:
                async with self._session.request(
                    request.method,
                    self.backends[index] + path,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                ) as upstream:
                    payload = await upstream.read()
                    reply_headers = {
                        k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
                    }
                    reply_headers[PIN_HEADER] = str(index)
                    self.records.append(
                        Forwarded(index, request.path, upstream.status, pinned is not None)
                    )
                    return web.Response(status=upstream.status, body=payload, headers=reply_headers)
            except (aiohttp.ClientConnectionError, TimeoutError):
                continue  # refused, reset or dead: try the next backend
        self.records.append(Forwarded(-1, request.path, 502, pinned is not None))
        return web.Response(status=502, text="no backend answered")
