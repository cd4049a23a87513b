"""`parley telegram`: python-telegram-bot wired to the core, by long polling or webhook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

from telegram import BotCommandScopeChat, Update
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bots.runtime import Runtime, redact_url
from bots.telegram.commands import menu, menu_languages
from bots.telegram.dedup import UpdateDeduplicator
from bots.telegram.errors import retry_after_seconds
from bots.telegram.handlers import TelegramHandlers
from bots.telegram.inbound import PLATFORM, Me
from bots.telegram.ordering import PerChatOrder
from bots.telegram.pacing import Pacers
from bots.telegram.request import AiohttpRequest
from bots.telegram.roles import TelegramChatRoles
from bots.telegram.settings import TelegramSettings
from bots.telegram.webhook import WebhookServer
from core.errors import BotError, ConfigError, PlatformError
from core.marks import OnceMarks
from core.phrases import phrases_for
from core.retry import STARTUP, RetryPolicy
from core.surfaces import TELEGRAM

T = TypeVar("T")
log = logging.getLogger(__name__)

# What `bots.cli` reads from an adapter module.
SETTINGS = TelegramSettings
PHRASES = phrases_for(TELEGRAM)

ALLOWED_UPDATES = [
    Update.MESSAGE,
    Update.EDITED_MESSAGE,
    Update.CALLBACK_QUERY,
    Update.INLINE_QUERY,  # `@bot question` (BotFather: /setinline)
    Update.CHOSEN_INLINE_RESULT,  # the result sent (BotFather: /setinlinefeedback)
]


def secret_values(settings: TelegramSettings) -> list[str]:
    """Values the log filter must mask."""
    values = [settings.telegram_bot_token.get_secret_value()]
    if settings.telegram_webhook_secret is not None:
        values.append(settings.telegram_webhook_secret.get_secret_value())
    return values


def build_application(settings: TelegramSettings) -> Application[Any, Any, Any, Any, Any, Any]:
    """A PTB Application pointed at TELEGRAM_API_URL; polling only when no webhook is set."""
    # Opt in to PTB's timedelta durations now: the int form warns on every 429 (RetryAfter).
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    timeout = settings.telegram_request_timeout
    api = settings.telegram_api_url
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .concurrent_updates(PerChatOrder())
        .request(
            AiohttpRequest(
                connection_pool_size=512,
                connect_timeout=timeout,
                read_timeout=timeout,
                write_timeout=timeout,
                pool_timeout=timeout,
            )
        )
        .get_updates_request(
            AiohttpRequest(
                connection_pool_size=1, read_timeout=settings.telegram_poll_timeout + timeout
            )
        )
        .job_queue(None)
    )
    if settings.telegram_webhook_url:
        builder = builder.updater(None)
    return builder.build()


def _advice(exc: BaseException) -> float | None:
    """A 429 is retried after its retry_after, a 5xx or network error soon, a 401/403/400 never."""
    # PTB's BadRequest (400) is a NetworkError: it must not pass for a transient failure.
    if isinstance(exc, RetryAfter):
        return retry_after_seconds(exc)
    if isinstance(exc, NetworkError) and not isinstance(exc, BadRequest):
        return 0.0
    return None


def _unanswered(exc: BaseException) -> bool:
    """No answer at all (refused, no route, timeout), as against a server that answered 5xx."""
    cause = exc.__cause__
    return isinstance(exc, TimedOut) or (
        isinstance(exc, NetworkError) and cause is not None and not isinstance(cause, TelegramError)
    )


def _sign_in_advice(exc: BaseException) -> float | None:
    """getMe rides out a 429 or a 5xx; an API nobody answers is most likely a wrong URL: say so."""
    return None if _unanswered(exc) else _advice(exc)


class TelegramBot:
    """The running adapter: Application, handlers, and the polling loop or webhook listener."""

    def __init__(
        self, runtime: Runtime, settings: TelegramSettings, *, retry: RetryPolicy = STARTUP
    ) -> None:
        self.runtime = runtime
        self.settings = settings
        self.retry = retry  # for the start-up calls; tests pass one that does not sleep
        self.application = build_application(settings)
        self.handlers: TelegramHandlers | None = None
        self.webhook: WebhookServer | None = None

    async def start(self) -> None:
        """getMe, register commands, then receive updates."""
        app = self.application
        await self._sign_in()
        bot = app.bot
        settings = self.settings
        runtime = self.runtime
        me = Me(bot.id, bot.username, bot.first_name)
        chat = runtime.service.commands.chat
        if chat is not None:  # group admins may set the group's persona and instructions
            chat.chat_admins.register(PLATFORM, TelegramChatRoles(bot))
        self.handlers = TelegramHandlers(
            bot=bot,
            me=me,
            service=runtime.service,
            settings=settings,
            pacers=Pacers.on_redis(
                runtime.redis,
                keys=runtime.keys,
                bot_id=bot.id,
                chat_interval=settings.telegram_chat_interval,
                group_per_minute=settings.telegram_group_messages_per_minute,
                bot_per_second=settings.telegram_bot_messages_per_second,
            ),
            dedup=UpdateDeduplicator(OnceMarks(runtime.redis, runtime.keys), bot_id=bot.id),
        )
        app.add_handler(TypeHandler(Update, self._dispatch))
        try:
            await self._register_commands()
        except TelegramError as exc:  # retried already; a menu is not worth refusing to start
            log.warning("running without (some) command menus: %s", self._reason(exc))
        await app.start()
        if settings.telegram_webhook_url and settings.telegram_webhook_secret is not None:
            host, port = settings.listen
            self.webhook = WebhookServer(
                path=settings.webhook_path,
                secret=settings.telegram_webhook_secret.get_secret_value(),
                host=host,
                port=port,
                on_update=self._enqueue,
            )
            try:
                await self.webhook.start()
            except OSError as exc:
                where = f"TELEGRAM_WEBHOOK_LISTEN={settings.telegram_webhook_listen}"
                raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from None
            await self._set_webhook(
                settings.telegram_webhook_url, settings.telegram_webhook_secret.get_secret_value()
            )
            log.info("Telegram bot @%s receiving updates by webhook", me.username)
        else:
            assert app.updater is not None
            await app.updater.start_polling(
                timeout=int(settings.telegram_poll_timeout),
                allowed_updates=ALLOWED_UPDATES,
            )
            log.info("Telegram bot @%s receiving updates by long polling", me.username)

    async def stop(self) -> None:
        """Stop receiving, let running replies finish briefly, close connections."""
        app = self.application
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if self.webhook is not None:
            await self.webhook.stop()  # the webhook stays set: Telegram queues updates for us
        # Replies finish (or are ended with a note) within SHUTDOWN_GRACE_SECONDS.
        await self.runtime.service.shutdown(self.runtime.settings.shutdown_grace_seconds)
        if self.handlers is not None:
            await self.handlers.close(grace=1.0)
        if app.running:
            await app.stop()
        await app.shutdown()

    async def _dispatch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert self.handlers is not None
        await self.handlers.on_update(update)

    async def _enqueue(self, data: dict[str, Any]) -> None:
        """A webhook update joins the same queue polling would fill."""
        update = Update.de_json(data, self.application.bot)
        if update is not None:
            await self.application.update_queue.put(update)

    async def _register_commands(self) -> None:
        """The command menu for everyone, and the admin menu in each admin's private chat, in
        every language Parley speaks (Telegram picks by the user's app language)."""
        bot = self.application.bot
        default = self.runtime.service.commands.languages.default
        for code, t in menu_languages(default):
            public = menu(admin=False, t=t)
            await self._retrying(
                partial(bot.set_my_commands, public, language_code=code), "setMyCommands"
            )
        for admin in sorted(self.runtime.settings.admin_ids):
            platform, _, user = admin.partition(":")
            if platform != PLATFORM or not user.lstrip("-").isdigit():
                continue
            scope = BotCommandScopeChat(int(user))
            try:
                for code, t in menu_languages(default):
                    admin_menu = menu(admin=True, t=t)
                    await self._retrying(
                        partial(bot.set_my_commands, admin_menu, scope=scope, language_code=code),
                        "setMyCommands",
                    )
            except (BadRequest, Forbidden) as exc:  # the admin never opened the bot: no chat yet
                log.info("no admin command menu for %s: %s", user, exc)

    async def _retrying(self, work: Callable[[], Awaitable[T]], what: str) -> T:
        """A start-up call, tried again through Telegram's 429s, 5xx and network errors."""
        return await self.retry.run(
            work, retry_on=(TelegramError,), what=f"Telegram {what}", advice=_advice
        )

    async def _sign_in(self) -> None:
        """getMe (in Application.initialize); a failure is one line that never holds the token."""
        app = self.application
        try:
            await self.retry.run(
                app.initialize,
                retry_on=(TelegramError,),
                what="Telegram getMe",
                advice=_sign_in_advice,
            )
        except TelegramError as exc:
            await app.bot.shutdown()  # the HTTP clients were opened before getMe failed
            raise self._sign_in_error(exc) from None

    def _sign_in_error(self, exc: TelegramError) -> BotError:
        """What an operator must fix when getMe fails, naming the variable to set."""
        api = f"TELEGRAM_API_URL={redact_url(self.settings.telegram_api_url)}"
        if isinstance(exc, InvalidToken):
            # PTB re-raises with the token in the message; the server's own answer is the cause.
            cause = exc.__cause__
            answer = cause.message.lower() if isinstance(cause, TelegramError) else ""
            if "not found" in answer:
                return ConfigError(
                    "Telegram answered 404 Not Found to TELEGRAM_BOT_TOKEN: the token is "
                    f"malformed or {api} is not a Bot API server; copy the token from @BotFather "
                    "into TELEGRAM_BOT_TOKEN"
                )
            return ConfigError(
                "Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): copy the token from "
                "@BotFather into TELEGRAM_BOT_TOKEN"
            )
        if _unanswered(exc):
            return ConfigError(f"cannot reach Telegram at {api}: {self._reason(exc)}")
        if isinstance(exc, RetryAfter | NetworkError):  # it answered, but kept failing
            return PlatformError(
                f"Telegram at {api} kept failing getMe ({self._reason(exc)}): try again later"
            )
        return ConfigError(f"Telegram refused getMe at {api}: {self._reason(exc)}")

    async def _set_webhook(self, url: str, secret: str) -> None:
        """setWebhook, retried through 429s and 5xx; a refusal is one line naming the variable."""
        bot = self.application.bot
        register = partial(
            bot.set_webhook, url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
        )
        try:
            await self._retrying(register, "setWebhook")
        except TelegramError as exc:
            where = f"TELEGRAM_WEBHOOK_URL={redact_url(url)}"
            if _advice(exc) is None:
                raise ConfigError(f"Telegram refused {where}: {self._reason(exc)}") from None
            attempts = len(self.retry.delays) + 1
            raise PlatformError(
                f"Telegram kept failing setWebhook for {where} ({self._reason(exc)}, "
                f"{attempts} attempts): check TELEGRAM_API_URL or start again later"
            ) from None

    def _reason(self, exc: TelegramError) -> str:
        """Telegram's description of a failure, without the token in it."""
        if isinstance(exc, RetryAfter):
            return f"flood control, retry after {retry_after_seconds(exc):g} s"
        if isinstance(exc, TimedOut):
            timeout = self.settings.telegram_request_timeout
            return f"no answer within TELEGRAM_REQUEST_TIMEOUT={timeout:g} s"
        token = self.settings.telegram_bot_token.get_secret_value()
        text = exc.message.replace(token, "***")
        return text.replace(token.partition(":")[2], "***") if ":" in token else text


@contextlib.asynccontextmanager
async def running(
    runtime: Runtime, settings: TelegramSettings, *, retry: RetryPolicy = STARTUP
) -> AsyncIterator[TelegramBot]:
    """The bot, started; stopped on exit (tests and `run` use this)."""
    bot = TelegramBot(runtime, settings, retry=retry)
    try:
        await bot.start()
        yield bot
    finally:
        await bot.stop()


async def run(
    runtime: Runtime, settings: TelegramSettings, *, retry: RetryPolicy = STARTUP
) -> None:
    """Run until cancelled, SIGTERM or Ctrl-C; then stop receiving and let replies finish."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread or no signal support: cancellation still works
    try:
        async with running(runtime, settings, retry=retry):
            await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
