"""The Slack message sink: a reply is posted in its thread, then grows by chat.update."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.controls import control_attachments
from bots.slack.errors import SLACK_FAILURES, translate
from bots.slack.pacing import Budget, SlackPacer
from bots.slack.render import GrowingMrkdwn, Rendered, render
from core.errors import MessageRejected, RateLimited
from core.phrases import Phrases
from core.sink import NO_CONTROLS, Content, Controls, MessageRef, SinkLimits

log = logging.getLogger(__name__)
_PHRASES = Phrases()


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where one reply goes: a channel, and the thread in it (None: top level of a DM)."""

    team: str
    channel: str
    thread_ts: str | None
    user: str  # the person being answered (native streams in channels need it)
    status_thread: str | None = None  # DMs: the thread whose assistant status shows progress
    status: str = _PHRASES.status  # that status, in the person's language
    assistant: bool = False  # an assistant-pane thread: its status shows progress, no placeholder


class SlackSink:
    """Writes one reply with chat.postMessage / chat.update; raises only core errors.

    Formatted text that Slack rejects is sent once more as plain text before giving up. The sink
    never sleeps or retries on 429: it names the budget at fault and lets the core's reply
    stream wait.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        target: ReplyTarget,
        *,
        pacer: SlackPacer,
        limits: SinkLimits,
    ) -> None:
        self._client = client
        self._target = target
        self._pacer = pacer
        self._limits = limits
        self._shown: dict[MessageRef, tuple[str, Controls]] = {}
        self._status = AssistantStatus(client, target)
        self._answer = GrowingMrkdwn()  # each edit converts only what the answer added

    @property
    def limits(self) -> SinkLimits:
        """Slack's rules for this reply."""
        return self._limits

    @property
    def pacer(self) -> SlackPacer:
        """The channel and workspace budgets this reply shares."""
        return self._pacer

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """Post a new message in the reply's thread, its buttons (if any) under the text."""
        rendered = render(content, self._answer)
        attachments = control_attachments(controls)

        async def post(text: str, mrkdwn: bool) -> dict[str, Any]:
            """The message, formatted or plain."""
            return await self._post(text, mrkdwn, attachments)

        response = await self._deliver("chat.postMessage", Budget.CHANNEL, rendered, post)
        ts = str(response["ts"])
        self._shown[ts] = (rendered.text, controls)
        return ts

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """Replace a message's text and buttons; the same again costs no API call."""
        rendered = render(content, self._answer)
        if self._shown.get(ref) == (rendered.text, controls):
            return
        attachments = control_attachments(controls)  # [] removes the buttons shown before

        async def update(text: str, mrkdwn: bool) -> dict[str, Any]:
            """This message, formatted or plain."""
            return await self._update(ref, text, mrkdwn, attachments)

        await self._deliver("chat.update", Budget.UPDATE, rendered, update)
        self._shown[ref] = (rendered.text, controls)

    async def typing(self) -> None:
        """Show the assistant status ("is thinking…") in DMs."""
        await self._status.show(self._target.status)

    async def close(self) -> None:
        """The turn is over: clear the status (Slack clears it on a new post, not on an edit)."""
        await self._status.clear()

    def forget(self, ref: MessageRef) -> None:
        """Stop tracking a message (another sink took it over)."""
        self._shown.pop(ref, None)

    async def _post(
        self, text: str, mrkdwn: bool, attachments: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """chat.postMessage in the thread, without link unfurls (they flicker while editing)."""
        response = await self._client.chat_postMessage(
            channel=self._target.channel,
            thread_ts=self._target.thread_ts,
            text=text,
            mrkdwn=mrkdwn,
            attachments=attachments or None,
            unfurl_links=False,
            unfurl_media=False,
        )
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def _update(
        self, ts: str, text: str, mrkdwn: bool, attachments: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """chat.update of one of our messages; its attachments are always given, so an empty
        list takes the buttons away (Slack keeps them when the field is left out)."""
        response = await self._client.chat_update(
            channel=self._target.channel, ts=ts, text=text, mrkdwn=mrkdwn, attachments=attachments
        )
        return dict(response.data) if isinstance(response.data, dict) else {}

    async def _deliver(
        self,
        method: str,
        budget: Budget,
        rendered: Rendered,
        call: Callable[[str, bool], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Formatted first, plain text if Slack rejects it; errors leave as core errors."""
        try:
            return await self._call(method, budget, call(rendered.text, True))
        except MessageRejected:
            log.info("slack %s rejected the formatted text; sending plain text", method)
        return await self._call(method, budget, call(rendered.plain, False))

    async def _call(
        self, method: str, budget: Budget, call: Awaitable[dict[str, Any]]
    ) -> dict[str, Any]:
        """Run one Web API call, translating failures once."""
        try:
            return await call
        except SLACK_FAILURES as exc:
            error = translate(exc, method)
        if isinstance(error, RateLimited):
            self._pacer.blame(budget)
        raise error


class AssistantStatus:
    """Slack's "is thinking…" line in a DM thread (best effort: only assistant threads have one)."""

    def __init__(self, client: AsyncWebClient, target: ReplyTarget) -> None:
        self._client = client
        self._target = target
        self._shown = False

    async def show(self, status: str) -> None:
        """Set the status line (again: Slack drops it when we post)."""
        self._shown = await self._set(status) or self._shown

    async def clear(self) -> None:
        """Remove the status line if we set one."""
        if self._shown:
            self._shown = not await self._set("")

    async def _set(self, status: str) -> bool:
        """One setStatus call; failures are logged quietly."""
        if self._target.status_thread is None:
            return False
        try:
            await self._client.assistant_threads_setStatus(
                channel_id=self._target.channel,
                thread_ts=self._target.status_thread,
                status=status,
            )
        except SLACK_FAILURES as exc:
            log.debug("no assistant status: %s", translate(exc, "assistant.threads.setStatus"))
            return False
        return True
