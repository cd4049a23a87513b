"""The webhook listener: Telegram POSTs updates here; the secret header is checked first."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
MAX_UPDATE_BYTES = 1024 * 1024


class WebhookServer:
    """aiohttp app serving the webhook path (and /healthz for load balancers)."""

    def __init__(
        self,
        *,
        path: str,
        secret: str,
        host: str,
        port: int,
        on_update: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self._path = path
        self._secret = secret.encode()
        self._host = host
        self._port = port
        self._on_update = on_update
        self._runner: web.AppRunner | None = None
        self.port = port

    async def start(self) -> None:
        """Bind and serve."""
        app = web.Application(client_max_size=MAX_UPDATE_BYTES)
        app.router.add_post(self._path, self._receive)
        app.router.add_get("/healthz", self._health)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        server = site._server  # aiohttp has no public accessor for the bound port
        sockets = getattr(server, "sockets", None)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("webhook listening on %s:%d%s", self._host, self.port, self._path)

    async def stop(self) -> None:
        """Stop accepting updates."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _receive(self, request: web.Request) -> web.Response:
        """403 unless the secret matches (compared in constant time); then queue the update."""
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret):
            log.warning("webhook call without the right secret from %s", request.remote)
            return web.Response(status=403, text="forbidden")
        try:
            update = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return web.Response(status=400, text="not an update")
        await self._on_update(update)
        return web.Response(status=200)

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200, text="ok")
