"""The two ways Slack reaches Parley: HTTP (Events API on /slack/events) and Socket Mode."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from core.errors import ConfigError

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


def http_app(app: AsyncApp) -> web.Application:
    """Events, commands and button clicks all arrive signed on one path (bolt checks it: 401)."""

    async def events(request: web.Request) -> web.Response:
        """One signed request through bolt (verification, ack, dispatch)."""
        return await to_aiohttp_response(await app.async_dispatch(await to_bolt_request(request)))

    async def health(_: web.Request) -> web.Response:
        """For load balancers and orchestrators."""
        return web.Response(text="ok")

    web_app = web.Application()
    web_app.router.add_post(EVENTS_PATH, events)
    web_app.router.add_get(HEALTH_PATH, health)
    return web_app


async def serve_http(app: AsyncApp, host: str, port: int, stop: asyncio.Event) -> None:
    """Listen on host:port until `stop` is set."""
    runner = web.AppRunner(http_app(app), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # the port is taken or the address is not ours: say which setting
            where = f"SLACK_HTTP_LISTEN={host}:{port}"
            raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from None
        log.info("Slack HTTP mode: listening on %s:%d%s", host, port, EVENTS_PATH)
        await stop.wait()
    finally:
        await runner.cleanup()


async def serve_socket(
    app: AsyncApp, client: AsyncWebClient, app_token: str, stop: asyncio.Event
) -> None:
    """Hold a Socket Mode connection (bolt acks each envelope) until `stop` is set."""
    handler = AsyncSocketModeHandler(app, app_token, web_client=client)
    try:
        await handler.connect_async()  # type: ignore[no-untyped-call]  # bolt leaves it untyped
        log.info("Slack Socket Mode: connected")
        await stop.wait()
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
