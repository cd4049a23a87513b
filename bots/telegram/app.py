"""`parley telegram`: python-telegram-bot wired to the core, by long polling or webhook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

from telegram import BotCommandScopeChat, Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bots.runtime import Runtime
from bots.telegram.commands import ADMIN_MENU, PUBLIC_MENU
from bots.telegram.dedup import UpdateDeduplicator
from bots.telegram.handlers import TelegramHandlers
from bots.telegram.ordering import PerChatOrder
from bots.telegram.pacing import Pacers
from bots.telegram.settings import TelegramSettings
from bots.telegram.updates import PLATFORM, Me
from bots.telegram.webhook import WebhookServer
from core.phrases import Phrases

log = logging.getLogger(__name__)

# What `bots.cli` reads from an adapter module.
SETTINGS = TelegramSettings
PHRASES = Phrases(stop_hint="Send /stop to cancel it.")

ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]


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
        .connection_pool_size(512)
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .write_timeout(timeout)
        .pool_timeout(timeout)
        .get_updates_read_timeout(settings.telegram_poll_timeout + timeout)
        .job_queue(None)
    )
    if settings.telegram_webhook_url:
        builder = builder.updater(None)
    return builder.build()


class TelegramBot:
    """The running adapter: Application, handlers, and the polling loop or webhook listener."""

    def __init__(self, runtime: Runtime, settings: TelegramSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.application = build_application(settings)
        self.handlers: TelegramHandlers | None = None
        self.webhook: WebhookServer | None = None

    async def start(self) -> None:
        """getMe, register commands, then receive updates."""
        app = self.application
        await app.initialize()
        bot = app.bot
        settings = self.settings
        runtime = self.runtime
        me = Me(bot.id, bot.username, bot.first_name)
        self.handlers = TelegramHandlers(
            bot=bot,
            me=me,
            service=runtime.service,
            core=runtime.settings,
            settings=settings,
            pacers=Pacers.on_redis(
                runtime.redis,
                keys=runtime.keys,
                bot_id=bot.id,
                chat_interval=settings.telegram_chat_interval,
                group_per_minute=settings.telegram_group_messages_per_minute,
                bot_per_second=settings.telegram_bot_messages_per_second,
            ),
            dedup=UpdateDeduplicator(runtime.redis, keys=runtime.keys, bot_id=bot.id),
        )
        app.add_handler(TypeHandler(Update, self._dispatch))
        await self._register_commands()
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
            await self.webhook.start()
            await bot.set_webhook(
                settings.telegram_webhook_url,
                secret_token=settings.telegram_webhook_secret.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
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
        """The command menu for everyone, and the admin menu in each admin's private chat."""
        bot = self.application.bot
        await bot.set_my_commands(PUBLIC_MENU)
        for admin in sorted(self.runtime.settings.admin_ids):
            platform, _, user = admin.partition(":")
            if platform != PLATFORM or not user.lstrip("-").isdigit():
                continue
            try:
                await bot.set_my_commands(ADMIN_MENU, scope=BotCommandScopeChat(int(user)))
            except TelegramError as exc:  # the admin never opened the bot: no chat yet
                log.info("no admin command menu for %s: %s", user, exc)


@contextlib.asynccontextmanager
async def running(runtime: Runtime, settings: TelegramSettings) -> AsyncIterator[TelegramBot]:
    """The bot, started; stopped on exit (tests and `run` use this)."""
    bot = TelegramBot(runtime, settings)
    try:
        await bot.start()
        yield bot
    finally:
        await bot.stop()


async def run(runtime: Runtime, settings: TelegramSettings) -> None:
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
        async with running(runtime, settings):
            await stop.wait()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
