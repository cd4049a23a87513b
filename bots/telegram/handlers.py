"""Routed updates → core calls. Replies stream in their own tasks; the update loop never waits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from telegram import Bot, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import TelegramError

from bots.telegram import commands as texts
from bots.telegram.commands import Confirmation
from bots.telegram.dedup import UpdateDeduplicator
from bots.telegram.errors import translate
from bots.telegram.pacing import Pacers
from bots.telegram.settings import StreamMode, TelegramSettings
from bots.telegram.sink import DraftSink, EditSink, ReplyTarget, payloads, telegram_limits
from bots.telegram.updates import (
    ADMIN_COMMANDS,
    PLATFORM,
    Action,
    Me,
    Routed,
    conversation_key,
    route,
)
from core.errors import BotError
from core.service import ChatService
from core.settings import CoreSettings
from core.sink import MessageSink, Segment, SegmentKind

log = logging.getLogger(__name__)


class TelegramHandlers:
    """Everything the bot does with an update, given its Bot and the core's service."""

    def __init__(
        self,
        *,
        bot: Bot,
        me: Me,
        service: ChatService,
        core: CoreSettings,
        settings: TelegramSettings,
        pacers: Pacers,
        dedup: UpdateDeduplicator,
    ) -> None:
        self._bot = bot
        self._me = me
        self._service = service
        self._core = core
        self._settings = settings
        self._pacers = pacers
        self._dedup = dedup
        self._replies: set[asyncio.Task[Any]] = set()
        self._handling = 0

    # -- entry point ---------------------------------------------------------------------------

    async def on_update(self, update: Update) -> None:
        """Decide, claim the update id, act. Never raises: one bad update must not stop others."""
        self._handling += 1
        try:
            routed = route(
                update,
                self._me,
                scope=self._settings.telegram_group_scope,
                is_admin=self._is_admin,
            )
            if routed.action is Action.IGNORE:
                log.debug("update %d ignored: %s", update.update_id, routed.reason)
                return
            if not await self._dedup.claim(update.update_id):
                log.info("update %d was already handled; skipping the redelivery", update.update_id)
                return
            await self._act(update, routed)
        except Exception:
            log.exception("failed to handle update %d", update.update_id)
        finally:
            self._handling -= 1

    async def close(self, grace: float = 5.0) -> None:
        """Let running replies finish for ``grace`` seconds, then cancel the rest."""
        if not self._replies:
            return
        _, pending = await asyncio.wait(set(self._replies), timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @property
    def running_replies(self) -> int:
        """Replies streaming right now (for tests and metrics)."""
        return len(self._replies)

    @property
    def busy(self) -> int:
        """Updates being handled plus replies streaming (for tests and metrics)."""
        return self._handling + len(self._replies)

    # -- actions -------------------------------------------------------------------------------

    async def _act(self, update: Update, routed: Routed) -> None:
        if routed.action is Action.CALLBACK:
            assert update.callback_query is not None
            await self._on_button(update.callback_query, routed)
            return
        target = routed.target
        assert target is not None
        if routed.action is Action.UNSUPPORTED:
            await self._say(target, texts.TEXT_ONLY)
        elif routed.action is Action.CHAT:
            assert routed.message is not None
            self._spawn(self._service.handle(routed.message, self.sink(target)), routed)
        elif routed.action is Action.COMMAND:
            await self._command(routed, target)

    def sink(self, target: ReplyTarget) -> MessageSink:
        """The sink for one reply: drafts in private chats if configured, edits otherwise."""
        private = target.private
        edits = EditSink(
            self._bot,
            target,
            pacer=self._pacers.for_chat(target.chat_id, private=private),
            limits=telegram_limits(self._pacers.interval(private=private)),
        )
        if private and self._settings.telegram_stream_mode is StreamMode.DRAFT:
            return DraftSink(self._bot, target, messages=edits)
        return edits

    def _spawn(self, work: Coroutine[Any, Any, object], routed: Routed) -> None:
        """Run a reply in its own task so the update loop stays free (/stop must get through)."""
        task = asyncio.create_task(work, name=f"reply {routed.chat_id}/{routed.user_id}")
        self._replies.add(task)
        task.add_done_callback(self._reply_done)

    def _reply_done(self, task: asyncio.Task[Any]) -> None:
        self._replies.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a reply failed", exc_info=task.exception())

    async def _say(self, target: ReplyTarget, markdown: str) -> None:
        """One short message from Parley (Markdown), paced like everything else in the chat."""
        sink = self.sink(target)
        try:
            await sink.pacer.acquire()
            await sink.send((Segment(SegmentKind.ANSWER, markdown),), final=True)
        except BotError as exc:
            log.warning("could not reply in chat %d: %s", target.chat_id, exc)

    def _is_admin(self, user_id: str) -> bool:
        return self._core.is_admin(PLATFORM, user_id)

    # -- commands ------------------------------------------------------------------------------

    async def _command(self, routed: Routed, target: ReplyTarget) -> None:
        name = routed.command
        key = conversation_key(routed, scope=self._settings.telegram_group_scope)
        admin = self._is_admin(routed.user_id)
        phrases = self._service.phrases
        if name == "start":
            await self._say(target, texts.start_text(self._me.name, self._me.username))
        elif name == "help":
            await self._say(target, texts.help_text(admin=admin))
        elif name == "stop":
            if await self._guard(target, self._service.stop(key)) is False:
                await self._say(target, phrases.nothing_running)
        elif name == "retry":
            self._spawn(self._service.retry(key, self.sink(target), user_id=routed.user_id), routed)
        elif name == "reset":
            if await self._guard(target, self._service.reset(key)) is not None:
                await self._say(target, phrases.reset_done)
        elif name == "forget":
            removed = await self._guard(target, self._service.forget(PLATFORM, routed.user_id))
            if removed is not None:
                await self._say(target, texts.FORGOTTEN.format(count=removed))
        elif name in ADMIN_COMMANDS:
            if not admin:
                log.warning("user %s tried admin command /%s", routed.user_id, name)
                await self._say(target, phrases.not_admin)
                return
            await self._admin(name, routed, target)
        else:
            await self._say(target, texts.UNKNOWN.format(command=name))

    async def _admin(self, name: str, routed: Routed, target: ReplyTarget) -> None:
        service = self._service
        actor = f"{PLATFORM}:{routed.user_id}"  # for the core's audit log
        if name == "reset_user":
            user = routed.args.split()[0] if routed.args.split() else ""
            if not user.isdigit():
                await self._say(target, texts.RESET_USER_USAGE)
                return
            removed = await self._guard(target, service.reset_user(PLATFORM, user, actor=actor))
            if removed is not None:
                await self._say(target, f"Removed {removed} conversation(s) of user {user}.")
        elif name == "reset_chat":
            removed = await self._guard(
                target, service.reset_chat(PLATFORM, str(target.chat_id), actor=actor)
            )
            if removed is not None:
                await self._say(target, f"Removed {removed} conversation(s) in this chat.")
        elif name == "stats":
            stats = await self._guard(target, service.stats())
            if stats is not None:
                await self._say(target, texts.stats_text(stats))
        elif name == "reset_all":
            await self._ask_reset_all(routed, target)

    async def _guard(self, target: ReplyTarget, work: Coroutine[Any, Any, Any]) -> Any:
        """Run a store operation; on failure tell the user and return None."""
        try:
            return await work
        except BotError as exc:
            log.error("command failed: %s", exc)
            await self._say(target, exc.user_message)
            return None

    async def _ask_reset_all(self, routed: Routed, target: ReplyTarget) -> None:
        """/reset_all only acts after the same admin presses "Yes" within two minutes."""
        now = int(time.time())
        buttons = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        "Yes, delete everything",
                        callback_data=Confirmation("reset_all", True, routed.user_id, now).data(),
                    ),
                    InlineKeyboardButton(
                        "Cancel",
                        callback_data=Confirmation("reset_all", False, routed.user_id, now).data(),
                    ),
                ]
            ]
        )
        sink = self.sink(target)
        text, entities = payloads((Segment(SegmentKind.ANSWER, texts.CONFIRM_RESET_ALL),))[0]
        try:
            await sink.pacer.acquire()
            await self._bot.send_message(
                target.chat_id,
                text,
                entities=entities or None,
                message_thread_id=target.thread_id,
                reply_markup=buttons,
            )
        except TelegramError as exc:
            log.warning("could not ask for confirmation: %s", translate(exc))

    async def _on_button(self, query: CallbackQuery, routed: Routed) -> None:
        """An inline button: only the confirmation of /reset_all exists."""
        confirmation = Confirmation.parse(routed.data)
        notice = ""
        outcome = ""
        if confirmation is None or confirmation.action != "reset_all":
            notice = "This button no longer does anything."
        elif confirmation.user_id != routed.user_id or not self._is_admin(routed.user_id):
            notice = "Only the admin who asked can answer this."
        elif confirmation.expired(time.time()):
            notice = outcome = "This confirmation expired; send /reset_all again."
        elif not confirmation.yes:
            notice = outcome = "Cancelled. Nothing was deleted."
        else:
            try:
                removed = await self._service.reset_all(actor=f"{PLATFORM}:{routed.user_id}")
                notice = outcome = f"Deleted all {removed} conversation(s)."
            except BotError as exc:
                log.error("reset_all failed: %s", exc)
                notice = outcome = exc.user_message
        with contextlib.suppress(TelegramError):
            await query.answer(notice, show_alert=not outcome)
        if outcome and query.message is not None:
            with contextlib.suppress(TelegramError):  # the buttons go away with the new text
                await self._bot.edit_message_text(
                    outcome, chat_id=query.message.chat.id, message_id=query.message.message_id
                )
