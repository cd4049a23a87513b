"""Slack's assistant pane through bolt's Assistant: a greeting and prompts, a title, the viewed
channel kept; questions enter the same intake as every other message."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.assistant.thread_context import AssistantThreadContext
from slack_bolt.context.assistant.thread_context_store.async_store import (
    AsyncAssistantThreadContextStore,
)
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import (
    AsyncSetSuggestedPrompts,
)
from slack_bolt.context.set_title.async_set_title import AsyncSetTitle
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.payload_utils import (
    is_any_im_message_event,
    is_assistant_thread_context_changed_event,
    is_assistant_thread_started_event,
)
from slack_bolt.response import BoltResponse

from bots.slack.errors import SLACK_FAILURES, translate
from bots.slack.inbound import PLATFORM, Inbound, from_message
from bots.slack.locales import SlackLocales
from bots.slack.memory import SlackMemory
from bots.slack.settings import SuggestedPrompt
from core.commands import Caller
from core.phrases import Phrases
from core.service import ChatService
from core.store.client import REDIS_FAILURES

log = logging.getLogger(__name__)

Accept = Callable[[Inbound], Awaitable[None]]
_TITLE_CHARS = 80
# What a context may hold: Slack ids only, so nothing kept can become a mention or a link.
_CONTEXT_FIELDS = ("channel_id", "team_id", "enterprise_id")
_SLACK_ID = re.compile(r"[A-Z0-9]{1,32}")


def default_prompts(phrases: Phrases) -> tuple[SuggestedPrompt, ...]:
    """Parley's own suggested prompts, in the person's language."""
    return (
        SuggestedPrompt(phrases.prompt_explain_title, phrases.prompt_explain),
        SuggestedPrompt(phrases.prompt_solve_title, phrases.prompt_solve),
        SuggestedPrompt(phrases.prompt_code_title, phrases.prompt_code),
    )


def thread_title(question: str) -> str:
    """A thread's title from its first question: one line, short."""
    line = " ".join(question.split())
    return line if len(line) <= _TITLE_CHARS else line[: _TITLE_CHARS - 1].rstrip() + "…"


def safe_context(context: Any) -> dict[str, str]:
    """The ids of the place the person views, and nothing else."""
    if not isinstance(context, dict):
        return {}
    return {
        name: value
        for name in _CONTEXT_FIELDS
        if isinstance(value := context.get(name), str) and _SLACK_ID.fullmatch(value)
    }


def _thread_of(event: dict[str, Any]) -> str | None:
    """The thread a DM message event (or the message it changes) belongs to."""
    for message in (event, event.get("message"), event.get("previous_message")):
        if isinstance(message, dict) and message.get("thread_ts"):
            return str(message["thread_ts"])
    return None


class ThreadContexts(AsyncAssistantThreadContextStore):
    """Bolt's thread-context store, kept in Redis beside the thread (not in message metadata)."""

    def __init__(self, memory: SlackMemory) -> None:
        self._memory = memory

    async def save(self, *, channel_id: str, thread_ts: str, context: dict[str, str]) -> None:
        """Keep the channel the person views; saving also marks the thread as the pane's."""
        kept = json.dumps(safe_context(context), sort_keys=True)
        await self._memory.assistant_thread(channel_id, thread_ts, kept)

    async def find(self, *, channel_id: str, thread_ts: str) -> AssistantThreadContext | None:
        """The context last kept for this thread."""
        value = await self._memory.assistant_context(channel_id, thread_ts)
        context = safe_context(json.loads(value)) if value else {}
        return AssistantThreadContext(context) if context else None


class AssistantGate(AsyncMiddleware):
    """Hands bolt's Assistant only the pane's own events and threads.

    Bolt's Assistant takes every DM thread reply for an assistant message and acks DM edits
    unseen; native streams answer DMs in threads and edits are answered anew (in the pane's
    threads too), so every other DM message, and every edit, goes on to the message listener.
    """

    def __init__(self, assistant: AsyncAssistant, memory: SlackMemory) -> None:
        self._assistant = assistant
        self._memory = memory

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        """The assistant's events to it, everything else onwards."""
        if await self._is_assistant(req.body):
            return await self._assistant.async_process(req=req, resp=resp, next=next)
        return await next()

    async def _is_assistant(self, body: dict[str, Any]) -> bool:
        """A thread_started / context_changed event, or a DM in a thread the pane began."""
        if is_assistant_thread_started_event(body) or is_assistant_thread_context_changed_event(
            body
        ):
            return True
        if not is_any_im_message_event(body):
            return False
        event = body["event"]
        if event.get("subtype") == "message_changed":
            return False  # an edited question: the message listener answers it anew
        thread = _thread_of(event)
        if thread is None or not event.get("channel"):
            return False
        try:
            return await self._memory.is_assistant_thread(str(event["channel"]), thread)
        except REDIS_FAILURES as exc:
            log.error("cannot tell whether a DM thread is the assistant's (Redis: %s)", exc)
            return False


class SlackAssistant:
    """The assistant pane's listeners; a question is handed to the adapter's usual intake."""

    def __init__(
        self,
        *,
        service: ChatService,
        memory: SlackMemory,
        locales: SlackLocales,
        prompts: tuple[SuggestedPrompt, ...] = (),
        dm_threads: bool = False,
    ) -> None:
        self._service = service
        self._memory = memory
        self._locales = locales
        self._prompts = prompts
        self._dm_threads = dm_threads
        self._accept: Accept | None = None

    def register(self, app: AsyncApp, accept: Accept) -> None:
        """Put the gated Assistant in the app's middleware; questions go to `accept`."""
        self._accept = accept
        assistant = AsyncAssistant(thread_context_store=ThreadContexts(self._memory), logger=log)
        assistant.thread_started(self.on_started)
        assistant.user_message(self.on_question)
        # context_changed keeps bolt's default listener: it saves into ThreadContexts.
        app.middleware(AssistantGate(assistant, self._memory))

    async def on_started(
        self,
        event: dict[str, Any],
        context: AsyncBoltContext,
        set_suggested_prompts: AsyncSetSuggestedPrompts,
    ) -> None:
        """The pane opened a thread: remember it, greet, offer prompts."""
        thread = event.get("assistant_thread") or {}
        channel, thread_ts = str(thread.get("channel_id", "")), str(thread.get("thread_ts", ""))
        user = str(thread.get("user_id", ""))
        try:
            await ThreadContexts(self._memory).save(
                channel_id=channel, thread_ts=thread_ts, context=thread.get("context") or {}
            )
        except REDIS_FAILURES as exc:
            log.error("cannot remember an assistant thread (Redis: %s)", exc)
        language = await self._locales.locale(user)
        caller = Caller(PLATFORM, user, channel, context.team_id or "", language=language)
        phrases = await self._service.phrases_for(caller)
        prompts = self._prompts or default_prompts(phrases)
        try:
            await context.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=phrases.assistant_greeting
            )
            await set_suggested_prompts(
                prompts=[{"title": p.title, "message": p.message} for p in prompts],
                title=phrases.assistant_prompts_title,
            )
        except SLACK_FAILURES as exc:
            log.warning("could not greet in an assistant thread: %s", translate(exc, "greeting"))

    async def on_question(
        self, event: dict[str, Any], context: AsyncBoltContext, set_title: AsyncSetTitle
    ) -> None:
        """A question in the pane: its own conversation; the first one names the thread."""
        inbound = from_message(
            event,
            team=context.team_id or "",
            bot_user_id=context.bot_user_id or "",
            dm_threads=self._dm_threads,
        )
        if inbound is None or self._accept is None:
            return
        inbound = replace(inbound, assistant=True)
        await self._accept(inbound)
        title = thread_title(inbound.text)
        try:
            if title and await self._memory.first_question(
                inbound.channel, inbound.thread_ts or ""
            ):
                await set_title(title)
        except REDIS_FAILURES as exc:
            log.error("cannot tell whether the assistant thread has a title (Redis: %s)", exc)
        except SLACK_FAILURES as exc:
            log.warning("could not title an assistant thread: %s", translate(exc, "setTitle"))
