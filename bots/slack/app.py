"""`parley slack`: builds the bolt app around the runtime and runs it in HTTP or Socket Mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.runtime import Runtime
from bots.slack import texts
from bots.slack.budget import BudgetRates, Budgets
from bots.slack.commands import SlashCommands
from bots.slack.errors import SLACK_FAILURES, error_code
from bots.slack.handlers import SlackHandlers
from bots.slack.memory import SlackMemory
from bots.slack.modes import serve_http, serve_socket
from bots.slack.replies import ReplyFactory, slack_limits
from bots.slack.settings import SlackSettings, StreamMode
from bots.slack.tasks import BackgroundTasks
from core.errors import ConfigError

log = logging.getLogger(__name__)

SETTINGS = SlackSettings
PHRASES = texts.PHRASES


def secret_values(settings: SlackSettings) -> list[str]:
    """Tokens and the signing secret, so the log filter can mask them."""
    secrets = [settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret]
    return [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]


def web_client(
    settings: SlackSettings, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The Web API client; no SDK retries, because the core's reply stream owns retrying.

    Pass a long-lived session: without one slack_sdk opens a connection (and a TLS handshake)
    for every call, which every chat.update would pay.
    """
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=max(1, round(settings.slack_api_timeout)),
        session=session,
        retry_handlers=[],
    )


def build_app(
    runtime: Runtime, settings: SlackSettings, client: AsyncWebClient, tasks: BackgroundTasks
) -> AsyncApp:
    """The bolt app with Parley's listeners; every dependency comes from the runtime."""
    secret = settings.slack_signing_secret
    bolt_log = logging.getLogger("slack_bolt")
    with _quiet(bolt_log):  # bolt warns that SLACK_BOT_TOKEN in the env is unused: we pass client
        app = AsyncApp(
            client=client,
            signing_secret=secret.get_secret_value() if secret is not None else "",
            request_verification_enabled=not settings.socket_mode,
            attaching_conversation_kwargs_enabled=False,
            logger=bolt_log,
        )
    memory = SlackMemory(
        runtime.redis, runtime.keys, ttl_seconds=runtime.settings.history_ttl_seconds
    )
    rates = BudgetRates(
        update_interval=60.0 / settings.slack_updates_per_minute,
        stream_interval=60.0 / settings.slack_stream_appends_per_minute,
        channel_interval=settings.slack_channel_interval,
    )
    replies = ReplyFactory(
        client,
        Budgets.on_redis(runtime.redis, rates, runtime.keys),
        mode=settings.slack_stream_mode,
        limits=slack_limits(settings.slack_message_chars),
    )
    commands = SlashCommands(
        runtime.service,
        runtime.settings,
        memory,
        scope=settings.slack_thread_scope,
        phrases=runtime.service.phrases,
        replies=replies,
        tasks=tasks,
    )
    SlackHandlers(
        service=runtime.service,
        settings=runtime.settings,
        memory=memory,
        replies=replies,
        tasks=tasks,
        scope=settings.slack_thread_scope,
        commands=commands,
        dm_threads=settings.slack_stream_mode is StreamMode.NATIVE,
    ).register(app)
    return app


async def check_token(client: AsyncWebClient) -> None:
    """auth.test once at start: a wrong token is a config error, not a silent bot."""
    try:
        identity = await client.auth_test()
    except SlackApiError as exc:
        raise ConfigError(f"Slack rejected SLACK_BOT_TOKEN: {error_code(exc)}") from None
    except SLACK_FAILURES as exc:
        raise ConfigError(f"cannot reach Slack at SLACK_API_URL: {type(exc).__name__}") from None
    log.info("Slack: signed in as %s in team %s", identity.get("user_id"), identity.get("team_id"))


async def check_app_token(client: AsyncWebClient, app_token: str) -> None:
    """Socket Mode: a wrong SLACK_APP_TOKEN would make the SDK retry forever; say so instead."""
    try:
        await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        raise ConfigError(f"Slack rejected SLACK_APP_TOKEN: {error_code(exc)}") from None
    except SLACK_FAILURES as exc:
        raise ConfigError(f"cannot reach Slack at SLACK_API_URL: {type(exc).__name__}") from None


@contextlib.contextmanager
def _quiet(logger: logging.Logger) -> Iterator[None]:
    """Silence a logger's warnings for a moment."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGTERM/SIGINT end the bot cleanly (running answers get a short grace period)."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signal support: cancellation still works
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def run(runtime: Runtime, settings: SlackSettings) -> None:
    """Run the Slack bot until cancelled or signalled."""
    timeout = aiohttp.ClientTimeout(total=settings.slack_api_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = web_client(settings, session)
        await check_token(client)
        tasks = BackgroundTasks()
        app = build_app(runtime, settings, client, tasks)
        try:
            await _serve(app, client, settings)
        finally:
            # Intake has stopped; replies in flight finish within the grace period or are
            # ended with a note, and their locks are released before the process exits.
            await runtime.service.shutdown(runtime.settings.shutdown_grace_seconds)
            await tasks.close()


async def _serve(app: AsyncApp, client: AsyncWebClient, settings: SlackSettings) -> None:
    """HTTP or Socket Mode until a signal or cancellation."""
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        if settings.slack_app_token is not None:
            app_token = settings.slack_app_token.get_secret_value()
            await check_app_token(client, app_token)
            await serve_socket(app, client, app_token, stop)
        else:
            host, port = settings.listen
            await serve_http(app, host, port, stop)
