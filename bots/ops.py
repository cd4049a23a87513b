"""The operations listener: /healthz, /readyz and /metrics for probes and Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bots.runtime import Runtime, redact_url
from core.store.client import REDIS_FAILURES

log = logging.getLogger(__name__)
_PROBE_TIMEOUT = 2.0


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::]:9000`) → (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{value!r} is not host:port (e.g. 0.0.0.0:9000)")
    return host.strip("[]") or "0.0.0.0", int(port)


def build_ops_app(runtime: Runtime) -> web.Application:
    """Routes only; the caller decides where it listens."""

    async def healthz(_: web.Request) -> web.Response:
        """The process is alive and its event loop answers."""
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        """Ready when Redis and at least one model server answer; each server is listed."""
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(_PROBE_TIMEOUT):
                await runtime.redis.ping()
            checks["redis"] = "ok"
        except REDIS_FAILURES as exc:  # a TimeoutError is an OSError
            checks["redis"] = f"unreachable: {type(exc).__name__}"
        servers = await runtime.llm.check(_PROBE_TIMEOUT)  # a failing one also cools down
        up = [s for s in servers if s.ready]
        checks["model"] = "ok" if up else servers[0].error
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, object] = {"status": "ready" if ready else "not ready", **checks}
        body["model_servers"] = {redact_url(s.url): "ok" if s.ready else s.error for s in servers}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        """Prometheus text format."""
        body = generate_latest(runtime.service.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


@contextlib.asynccontextmanager
async def ops_listener(runtime: Runtime, listen: str) -> AsyncIterator[int | None]:
    """Serve the ops endpoints on ``listen`` (empty: not at all); yield the bound port."""
    if not listen:
        yield None
        return
    host, port = parse_listen(listen)
    runner = web.AppRunner(build_ops_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = site._server  # the bound port when 0 was asked for
    if server is not None and server.sockets:  # type: ignore[attr-defined]
        bound = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
    log.info("operations endpoints on http://%s:%d (/healthz /readyz /metrics)", host, bound)
    try:
        yield bound
    finally:
        await runner.cleanup()
