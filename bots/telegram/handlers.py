"""Routed updates → core calls. Replies stream in their own tasks; the update loop never waits."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from telegram import Bot, CallbackQuery, LinkPreviewOptions, Message, ReplyParameters, Update
from telegram.constants import ChatType
from telegram.error import TelegramError

from bots.tasks import BackgroundTasks
from bots.telegram.commands import (
    arguments,
    buttons,
    choice_buttons,
    parse_answer,
    parse_command,
    parse_pick,
)
from bots.telegram.controls import parse_control
from bots.telegram.dedup import UpdateDeduplicator
from bots.telegram.errors import translate
from bots.telegram.inbound import PLATFORM, Action, Me, Routed, conversation_key, route
from bots.telegram.inline_answers import InlineAnswers
from bots.telegram.pacing import Pacers
from bots.telegram.settings import StreamMode, TelegramSettings
from bots.telegram.sink import DraftSink, EditSink, ReplyTarget, payloads, telegram_limits
from core.commands import Caller, CommandName, CommandRequest, Reply, TurnRequest
from core.notes import say
from core.service import ChatService
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
        settings: TelegramSettings,
        pacers: Pacers,
        dedup: UpdateDeduplicator,
    ) -> None:
        self._bot = bot
        self._me = me
        self._service = service
        self._settings = settings
        self._pacers = pacers
        self._dedup = dedup
        self._replies = BackgroundTasks()
        self._handling = 0
        self._inline = InlineAnswers(bot=bot, service=service, pacers=pacers, private=self.sink)

    # -- entry point ---------------------------------------------------------------------------

    async def on_update(self, update: Update) -> None:
        """Decide, claim the update id, act. Never raises: one bad update must not stop others."""
        self._handling += 1
        try:
            routed = route(update, self._me, scope=self._settings.telegram_group_scope)
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
        await self._replies.close(grace)

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
        if routed.action is Action.INLINE_QUERY:
            assert update.inline_query is not None
            await self._inline.offer(update.inline_query, self._caller(routed))
            return
        if routed.action is Action.INLINE_CHOSEN:
            assert update.chosen_inline_result is not None
            work = self._inline.answer(update.chosen_inline_result, self._caller(routed))
            self._spawn(work, routed)
            return
        target = routed.target
        assert target is not None
        if routed.action is Action.UNSUPPORTED:
            phrases = await self._service.phrases_for(self._caller(routed))
            await self._say(target, phrases.text_only)
        elif routed.action is Action.CHAT:
            assert routed.message is not None
            self._spawn(self._service.handle(routed.message, self.sink(target)), routed)
        elif routed.action is Action.EDIT:  # the core decides whether it re-asks the question
            assert routed.message is not None
            turn = TurnRequest.edited(routed.message, routed.version)
            self._spawn(self._service.submit(turn, self.sink(target)), routed)
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
        self._replies.spawn(_ignore_result(work), f"reply {routed.chat_id}/{routed.user_id}")

    async def _say(self, target: ReplyTarget, text: str) -> None:
        """One short note from Parley, paced like everything else in the chat."""
        await say(self.sink(target), text)

    # -- commands ------------------------------------------------------------------------------

    def _caller(self, routed: Routed) -> Caller:
        """Who sent the command: Telegram's own sender id, and the chat it came from."""
        return Caller(
            PLATFORM,
            routed.user_id,
            str(routed.chat_id),
            group=routed.group,
            language=routed.language,
        )

    async def _command(self, routed: Routed, target: ReplyTarget) -> None:
        """Parse, let the core decide, draw the reply (or stream the turn it starts)."""
        name = parse_command(routed.command)
        if name is None:
            unknown = await self._service.commands.unknown(
                self._caller(routed), f"/{routed.command}"
            )
            await self._show(target, unknown)
            return
        request = CommandRequest(
            name,
            self._caller(routed),
            key=conversation_key(routed, scope=self._settings.telegram_group_scope),
            args=arguments(routed.args),
            text=routed.args,
        )
        reply = await self._service.command(request)
        if reply.turn is not None:  # the answer itself is the reply: no "answering again" note
            self._spawn(self._service.submit(reply.turn, self.sink(target)), routed)
            return
        await self._show(target, reply)

    async def _show(self, target: ReplyTarget, reply: Reply) -> None:
        """A command's reply as one message, with buttons if it asks a question or offers
        choices."""
        if not reply.text:
            return
        markup = None
        if reply.question is not None:
            markup = buttons(reply.question)
        elif reply.choices:
            markup = choice_buttons(reply.choices)
        sink = self.sink(target)
        text, entities = payloads((Segment(SegmentKind.ANSWER, reply.text),))[0]
        try:
            await sink.pacer.acquire()
            await self._bot.send_message(
                target.chat_id,
                text,
                entities=entities or None,
                message_thread_id=target.thread_id,
                reply_parameters=ReplyParameters(target.reply_to, allow_sending_without_reply=True)
                if target.reply_to is not None
                else None,
                reply_markup=markup,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
        except TelegramError as exc:
            log.warning("could not reply in chat %d: %s", target.chat_id, translate(exc))

    async def _on_control(
        self, query: CallbackQuery, routed: Routed, control: tuple[str, str]
    ) -> None:
        """Stop, Regenerate or Continue under an answer: answered at once; a turn it starts
        streams over the answer's own messages."""
        request = CommandRequest(CommandName.CONTROL, self._caller(routed), args=control)
        reply = await self._service.command(request)
        with contextlib.suppress(TelegramError):
            if reply.ok:
                await query.answer()
            else:
                await query.answer(reply.text[:200], show_alert=True)
        message = query.message
        if reply.turn is None or not isinstance(message, Message):
            return
        topic = message.message_thread_id if message.is_topic_message else None
        target = ReplyTarget(
            message.chat.id, message.chat.type == ChatType.PRIVATE, thread_id=topic
        )
        self._spawn(self._service.submit(reply.turn, self.sink(target)), routed)

    async def _on_button(self, query: CallbackQuery, routed: Routed) -> None:
        """A yes/no or option button: the core decides; a settled one replaces the prompt."""
        control = parse_control(routed.data)
        if control is not None:
            await self._on_control(query, routed, control)
            return
        answer = parse_answer(routed.data)
        pick = parse_pick(routed.data)
        if answer is not None:
            request = CommandRequest(CommandName.CONFIRM, self._caller(routed), args=answer)
        elif pick is not None:
            name, argument = pick
            request = CommandRequest(name, self._caller(routed), args=(argument,), text=argument)
        else:
            phrases = await self._service.phrases_for(self._caller(routed))
            with contextlib.suppress(TelegramError):
                await query.answer(phrases.stale_button, show_alert=True)
            return
        reply = await self._service.command(request)
        text, entities = payloads((Segment(SegmentKind.ANSWER, reply.text),))[0]
        with contextlib.suppress(TelegramError):  # answered at once: the button stops spinning
            await query.answer(text[:200], show_alert=not reply.settles)
        if reply.settles and query.message is not None:
            with contextlib.suppress(TelegramError):  # the buttons go away with the new text
                await self._bot.edit_message_text(
                    text,
                    chat_id=query.message.chat.id,
                    message_id=query.message.message_id,
                    entities=entities or None,
                )


async def _ignore_result(work: Coroutine[Any, Any, object]) -> None:
    """A reply's result is for tests and metrics; the task itself returns nothing."""
    await work
