"""Bolt listeners: filter and normalise, ack at once, answer in the background."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.response import BoltResponse

from bots.slack.assistant import SlackAssistant
from bots.slack.commands import (
    CONFIRM_NO,
    CONFIRM_YES,
    PICK_ACTIONS,
    Invocation,
    SlashCommands,
)
from bots.slack.controls import CONTROL_ACTIONS
from bots.slack.dedup import EventDeduplicator
from bots.slack.inbound import (
    PLATFORM,
    Inbound,
    Route,
    from_edit,
    from_mention,
    from_message,
    is_dm_channel,
    reply_target,
)
from bots.slack.locales import SlackLocales
from bots.slack.memory import SlackMemory
from bots.slack.render import markdown_to_mrkdwn
from bots.slack.replies import ReplyFactory, answer_turn
from bots.slack.settings import ThreadScope
from bots.slack.sink import ReplyTarget
from bots.tasks import BackgroundTasks
from core.commands import Caller, Reply, TurnRequest
from core.conversation import IncomingMessage
from core.errors import BotError, StoreError
from core.service import ChatService
from core.store.client import REDIS_FAILURES

log = logging.getLogger(__name__)

Next = Callable[[], Awaitable[None]]


class SlackHandlers:
    """Turns Slack events and commands into ChatService calls."""

    def __init__(
        self,
        *,
        service: ChatService,
        memory: SlackMemory,
        dedup: EventDeduplicator,
        replies: ReplyFactory,
        tasks: BackgroundTasks,
        scope: ThreadScope,
        commands: SlashCommands,
        locales: SlackLocales,
        dm_threads: bool = False,
        assistant: SlackAssistant | None = None,
    ) -> None:
        self._service = service
        self._memory = memory
        self._dedup = dedup
        self._replies = replies
        self._tasks = tasks
        self._scope = scope
        self._commands = commands
        self._locales = locales
        self._dm_threads = dm_threads
        self._assistant = assistant

    def register(self, app: AsyncApp) -> None:
        """Wire every listener; unhandled event types would otherwise get 404 and be retried."""
        app.middleware(self.deduplicate)
        if self._assistant is not None:  # before the listeners: it takes the pane's threads
            self._assistant.register(app, self._accept)
        app.event("message")(self.on_message)
        app.event("app_mention")(self.on_mention)
        app.command("/parley")(self.on_command)
        app.action(CONFIRM_YES)(self.on_confirm)
        app.action(CONFIRM_NO)(self.on_cancel)
        app.action(PICK_ACTIONS)(self.on_pick)
        app.action(CONTROL_ACTIONS)(self.on_control)

    # -- events ----------------------------------------------------------------------------

    async def deduplicate(self, body: dict[str, Any], next: Next) -> BoltResponse | None:
        """Each event_id is handled once across replicas; Slack's retries are acked and dropped."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not await self._dedup.first_delivery(str(event_id)):
            log.info("event %s already handled; acknowledging the retry", event_id)
            return BoltResponse(status=200, body="")
        await next()
        return None

    async def on_message(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """DMs, and replies in threads Parley is part of; edits of what they asked."""
        edit = from_edit(
            event,
            team=context.team_id or "",
            bot_user_id=_bot(context),
            dm_threads=self._dm_threads,
        )
        if edit is not None:
            await self._accept_edit(*edit)
            return
        inbound = from_message(
            event,
            team=context.team_id or "",
            bot_user_id=_bot(context),
            dm_threads=self._dm_threads,
        )
        if inbound is not None:
            await self._accept(inbound)

    async def on_mention(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """@parley in a channel: answered in a thread under the mention."""
        inbound = from_mention(event, team=context.team_id or "", bot_user_id=_bot(context))
        if inbound is not None:
            await self._accept(inbound)

    async def _accept(self, inbound: Inbound) -> None:
        """Claim the message, remember the thread, and start answering in the background."""
        try:
            if not await self._claim(inbound):
                return
        except REDIS_FAILURES as exc:
            if inbound.route is Route.FOLLOW_UP:
                log.error("cannot tell whether Parley is in this thread (Redis: %s)", exc)
                return
            log.error("cannot reach Redis for a Slack message: %s", exc)
        language = await self._locales.locale(inbound.user)
        caller = Caller(PLATFORM, inbound.user, inbound.channel, inbound.team, language=language)
        phrases = await self._service.phrases_for(caller)
        target = replace(inbound.target(), status=phrases.status)
        if not inbound.text and inbound.has_files:
            self._tasks.spawn(self._note(target, phrases.text_only), name="slack note")
            return  # an empty text goes on: the core answers it with a hint
        message = self._incoming(inbound, language)
        self._tasks.spawn(self._answer(message, target), name=f"slack answer {inbound.ts}")

    async def _accept_edit(self, inbound: Inbound, version: str) -> None:
        """An edited question: the core answers it anew only if it is the newest, once."""
        try:
            if inbound.route is Route.FOLLOW_UP and not await self._memory.is_part_of(
                inbound.channel, inbound.thread_ts or ""
            ):
                return
        except REDIS_FAILURES as exc:
            log.error("cannot tell whether Parley is in this thread (Redis: %s)", exc)
            return
        if inbound.is_dm and inbound.thread_ts:
            # A question edited in the assistant pane continues that thread's own conversation.
            pane = await self._pane_thread(inbound.channel, inbound.thread_ts)
            inbound = replace(inbound, assistant=pane)
        language = await self._locales.locale(inbound.user)
        caller = Caller(PLATFORM, inbound.user, inbound.channel, inbound.team, language=language)
        phrases = await self._service.phrases_for(caller)
        target = replace(inbound.target(), status=phrases.status)
        message = self._incoming(inbound, language)
        turn = TurnRequest.edited(message, version)
        self._tasks.spawn(
            answer_turn(self._service, self._replies, turn, target), name=f"slack edit {inbound.ts}"
        )

    def _incoming(self, inbound: Inbound, language: str) -> IncomingMessage:
        """The message as the core takes it."""
        return IncomingMessage(
            key=inbound.key(self._scope),
            text=inbound.text,
            user_id=inbound.user,
            message_id=inbound.ts,
            workspace=inbound.team,
            group=not inbound.is_dm,
            language=language,
        )

    async def _claim(self, inbound: Inbound) -> bool:
        """Whether this replica answers: Parley's thread, first to claim it; remember the thread."""
        if inbound.route is Route.FOLLOW_UP and not await self._memory.is_part_of(
            inbound.channel, inbound.thread_ts or ""
        ):
            return False
        if not await self._dedup.claim_message(inbound.channel, inbound.ts):
            return False
        if inbound.is_dm:
            await self._memory.set_latest(inbound.channel, inbound.user, inbound.reply_thread or "")
        else:
            await self._memory.joined(inbound.channel, inbound.reply_thread or "", inbound.user)
        return True

    async def _answer(self, message: IncomingMessage, target: ReplyTarget) -> None:
        """One whole turn; the service tells the user about problems itself."""
        sink = self._replies.sink(target)
        try:
            result = await self._service.handle(message, sink)
        finally:
            await sink.close()
        log.info("slack turn %s: %s", message.key, result.outcome)

    async def _note(self, target: ReplyTarget, text: str) -> None:
        """A short reply that needs no model."""
        try:
            await self._replies.note(target, text)
        except BotError as exc:
            log.warning("could not send a note: %s", exc)

    # -- commands --------------------------------------------------------------------------

    async def on_command(
        self, ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """/parley …: answered in the ack itself (ephemeral), within Slack's 3 seconds."""
        call = Invocation(
            user_id=str(command.get("user_id", "")),
            channel_id=str(command.get("channel_id", "")),
            team_id=str(command.get("team_id") or context.team_id or ""),
            text=str(command.get("text", "")),
        )
        try:
            reply = await self._commands.run(call)
        except REDIS_FAILURES as exc:  # the adapter's own memory (which thread is the latest)
            log.error("/parley %s failed: %s", call.text, exc)
            caller = Caller(
                PLATFORM, call.user_id, language=await self._locales.locale(call.user_id)
            )
            t = self._service.commands.languages.platform_language(caller)
            await ack(text=t.gettext(StoreError.user_message), response_type="ephemeral")
            return
        await ack(text=reply.text, blocks=reply.blocks, response_type="ephemeral")

    async def on_confirm(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """Yes on a question: the core decides; a settled question replaces the prompt."""
        await self._on_answer(ack, body, respond, yes=True)

    async def on_cancel(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """No on a question."""
        await self._on_answer(ack, body, respond, yes=False)

    async def _on_answer(
        self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, *, yes: bool
    ) -> None:
        """Ack at once, then let the core check the presser, the expiry, and act."""
        await ack()
        user_id = str((body.get("user") or {}).get("id", ""))
        team_id = str((body.get("team") or {}).get("id", ""))
        actions = body.get("actions") or [{}]
        question = str(actions[0].get("value", ""))
        reply = await self._commands.answer(user_id, team_id, question, yes)
        await self._respond(respond, reply)

    async def on_pick(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """An option button (a persona): the core decides, as if the command had been typed."""
        await ack()
        user_id = str((body.get("user") or {}).get("id", ""))
        team_id = str((body.get("team") or {}).get("id", ""))
        channel_id = str((body.get("channel") or {}).get("id", ""))
        actions = body.get("actions") or [{}]
        reply = await self._commands.pick(
            user_id, team_id, channel_id, str(actions[0].get("value", ""))
        )
        await self._respond(respond, reply)

    async def on_control(self, ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """Stop, Regenerate or Continue under an answer: acked at once; the core decides; a turn
        it starts is written over the answer's own messages."""
        await ack()
        user_id = str((body.get("user") or {}).get("id", ""))
        team_id = str((body.get("team") or {}).get("id", ""))
        channel_id = str((body.get("channel") or {}).get("id", ""))
        container = body.get("container") or {}
        actions = body.get("actions") or [{}]
        action = actions[0]
        reply = await self._commands.control(
            user_id,
            team_id,
            channel_id,
            str(action.get("action_id", "")),
            str(action.get("value", "")),
        )
        if not reply.ok:
            await respond(
                text=markdown_to_mrkdwn(reply.text),
                replace_original=False,
                response_type="ephemeral",
            )
            return
        if reply.turn is None:
            return
        thread = container.get("thread_ts") or None
        dm = is_dm_channel(channel_id)
        target = reply_target(
            team=team_id,
            channel=channel_id,
            user=user_id,
            thread=str(thread) if thread else None,
            dm=dm,
            anchor=str(thread) if thread else None,
        )
        # An answer in the assistant pane is regenerated as it was written: with the pane's
        # status, not a placeholder message.
        pane = bool(dm and thread) and await self._pane_thread(channel_id, str(thread))
        phrases = await self._service.phrases_for(reply.turn.caller)
        target = replace(target, status=phrases.status, assistant=pane)
        self._tasks.spawn(
            answer_turn(self._service, self._replies, reply.turn, target),
            name=f"slack {reply.turn.kind}",
        )

    async def _pane_thread(self, channel: str, thread: str) -> bool:
        """Whether a DM thread began in the assistant pane (a Redis failure: assume not)."""
        try:
            return await self._memory.is_assistant_thread(channel, thread)
        except REDIS_FAILURES as exc:
            log.warning("cannot tell whether %s is a pane thread: %s", thread, exc)
            return False

    @staticmethod
    async def _respond(respond: AsyncRespond, reply: Reply) -> None:
        """A settled press replaces the prompt; a refused one is told to the presser only."""
        text = markdown_to_mrkdwn(reply.text)
        if reply.settles:
            await respond(text=text, replace_original=True)
        else:  # someone else pressed it: tell only them, leave the question standing
            await respond(text=text, replace_original=False, response_type="ephemeral")


def _bot(context: AsyncBoltContext) -> str:
    """The bot's own user id, from auth.test via bolt's authorization."""
    return context.bot_user_id or ""
