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

from bots.runtime import Runtime, redact_url
from bots.slack.assistant import SlackAssistant
from bots.slack.commands import SlashCommands
from bots.slack.dedup import EventDeduplicator
from bots.slack.errors import SLACK_FAILURES, error_code, translate
from bots.slack.handlers import SlackHandlers
from bots.slack.inbound import PLATFORM
from bots.slack.locales import SlackLocales
from bots.slack.memory import SlackMemory
from bots.slack.modes import serve_http, serve_socket
from bots.slack.pacing import BudgetRates, Budgets
from bots.slack.replies import ReplyFactory, slack_limits
from bots.slack.roles import SlackChatRoles
from bots.slack.settings import SlackSettings, StreamMode
from bots.tasks import BackgroundTasks
from core.errors import BotError, ConfigError, PlatformError, RateLimited
from core.marks import OnceMarks
from core.phrases import phrases_for
from core.retry import STARTUP, RetryPolicy
from core.surfaces import SLACK

log = logging.getLogger(__name__)

SETTINGS = SlackSettings
PHRASES = phrases_for(SLACK)


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
    runtime.service.commands.user_data.append(memory)  # /forget reaches the adapter's memory
    chat = runtime.service.commands.chat
    if chat is not None:  # workspace admins may set a channel's persona and instructions
        chat.chat_admins.register(PLATFORM, SlackChatRoles(client))
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
    locales = SlackLocales(client)  # each person's language, from users.info
    commands = SlashCommands(
        runtime.service,
        memory,
        scope=settings.slack_thread_scope,
        replies=replies,
        tasks=tasks,
        locales=locales,
    )
    assistant = SlackAssistant(
        service=runtime.service,
        memory=memory,
        locales=locales,
        prompts=settings.assistant_prompts,
        dm_threads=settings.slack_stream_mode is StreamMode.NATIVE,
    )
    SlackHandlers(
        service=runtime.service,
        memory=memory,
        dedup=EventDeduplicator(OnceMarks(runtime.redis, runtime.keys)),
        replies=replies,
        tasks=tasks,
        scope=settings.slack_thread_scope,
        commands=commands,
        locales=locales,
        dm_threads=settings.slack_stream_mode is StreamMode.NATIVE,
        assistant=assistant,
    ).register(app)
    return app


# Error codes that say "Slack is having trouble", not "this token is wrong": worth another try.
_TRANSIENT_CODES = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def _advice(exc: BaseException) -> float | None:
    """ratelimited waits its Retry-After, a 5xx or network error is retried, a bad token never."""
    if isinstance(exc, SlackApiError):
        failure = translate(exc, "start-up")
        if isinstance(failure, RateLimited):
            return failure.retry_after
        transient = exc.response.status_code >= 500 or error_code(exc) in _TRANSIENT_CODES
        return 0.0 if transient else None
    return 0.0 if isinstance(exc, aiohttp.ClientError | TimeoutError) else None


def _failure(exc: Exception, client: AsyncWebClient, variable: str, fix: str) -> BotError:
    """One line for a start-up call that failed for good: what is wrong and what to set."""
    api = f"SLACK_API_URL={redact_url(client.base_url)}"
    if isinstance(exc, SlackApiError):
        code = error_code(exc) or f"HTTP {exc.response.status_code}"
        if _advice(exc) is None:
            return ConfigError(f"Slack rejected {variable}: {code}; {fix}")
        return PlatformError(f"Slack at {api} kept failing ({code}): try again later")
    detail = str(exc).strip()
    reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if isinstance(exc, aiohttp.ClientError | TimeoutError):
        return ConfigError(f"cannot reach Slack at {api}: {reason}")
    return ConfigError(f"checking {variable} with Slack at {api} failed: {reason}")


async def check_token(client: AsyncWebClient, *, retry: RetryPolicy = STARTUP) -> None:
    """auth.test once at start: a wrong token is a config error, not a silent bot."""
    try:
        identity = await retry.run(
            client.auth_test, retry_on=SLACK_FAILURES, what="Slack auth.test", advice=_advice
        )
    except SLACK_FAILURES as exc:
        fix = (
            "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page "
            "into SLACK_BOT_TOKEN"
        )
        raise _failure(exc, client, "SLACK_BOT_TOKEN", fix) from None
    log.info("Slack: signed in as %s in team %s", identity.get("user_id"), identity.get("team_id"))


async def check_app_token(
    client: AsyncWebClient, app_token: str, *, retry: RetryPolicy = STARTUP
) -> None:
    """Socket Mode: a wrong SLACK_APP_TOKEN would make the SDK retry forever; say so instead."""

    async def open_connection() -> object:
        """apps.connections.open with the app-level token (the bot token cannot open it)."""
        return await client.apps_connections_open(app_token=app_token)

    try:
        await retry.run(
            open_connection,
            retry_on=SLACK_FAILURES,
            what="Slack apps.connections.open",
            advice=_advice,
        )
    except SLACK_FAILURES as exc:
        fix = (
            "copy an app-level token (xapp-…) with the connections:write scope from the app's "
            "Basic Information page into SLACK_APP_TOKEN"
        )
        raise _failure(exc, client, "SLACK_APP_TOKEN", fix) from None


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


async def run(runtime: Runtime, settings: SlackSettings, *, retry: RetryPolicy = STARTUP) -> None:
    """Run the Slack bot until cancelled or signalled; ``retry`` paces the start-up calls."""
    timeout = aiohttp.ClientTimeout(total=settings.slack_api_timeout)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = web_client(settings, session)
        await check_token(client, retry=retry)
        tasks = BackgroundTasks()
        app = build_app(runtime, settings, client, tasks)
        try:
            await _serve(app, client, settings, retry)
        finally:
            # Intake has stopped; replies in flight finish within the grace period or are
            # ended with a note, and their locks are released before the process exits.
            await runtime.service.shutdown(runtime.settings.shutdown_grace_seconds)
            await tasks.close()


async def _serve(
    app: AsyncApp, client: AsyncWebClient, settings: SlackSettings, retry: RetryPolicy
) -> None:
    """HTTP or Socket Mode until a signal or cancellation."""
    stop = asyncio.Event()
    with _stop_on_signals(stop):
        if settings.slack_app_token is not None:
            app_token = settings.slack_app_token.get_secret_value()
            await check_app_token(client, app_token, retry=retry)
            await serve_socket(app, client, app_token, stop)
        else:
            host, port = settings.listen
            await serve_http(app, host, port, stop)
