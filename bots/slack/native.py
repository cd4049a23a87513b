"""Native Slack streaming (chat.startStream/appendStream/stopStream) with chat.update as fallback.

The core hands the sink the whole message each time ("latest text wins"); a native stream can
only append. So the sink appends the difference while the new text extends what is shown, and
falls back to chat.update for that message when it does not, or when Slack ends the stream
(`message_not_in_streaming_state` after about five minutes). slack_sdk's `chat_stream` helper
is not used: it buffers on its own and its buffer would diverge from Slack after a 429, while
the core's pacer already batches writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.controls import control_blocks
from bots.slack.errors import SLACK_FAILURES, STREAM_OVER, error_code, translate
from bots.slack.pacing import Budget, SlackPacer
from bots.slack.render import render_stream_markdown
from bots.slack.sink import ReplyTarget, SlackSink
from core.errors import PlatformError, RateLimited
from core.sink import NO_CONTROLS, Content, Controls, MessageRef, Pacer, SinkLimits

log = logging.getLogger(__name__)

_STREAM_TEXT_LIMIT = 12_000  # markdown_text per call
_CLOSE_ATTEMPTS = 3  # a 429 while finishing is waited out this many times


@dataclass(slots=True)
class _Stream:
    """What one streaming message shows so far, and the content it should end with."""

    shown: str
    content: Content
    controls: Controls = NO_CONTROLS


class NativeStreamSink:
    """A reply streamed natively; any message that cannot continue natively uses chat.update."""

    def __init__(
        self,
        client: AsyncWebClient,
        target: ReplyTarget,
        *,
        pacer: SlackPacer,
        limits: SinkLimits,
        update_budget: Pacer,
    ) -> None:
        self._client = client
        self._target = target
        self._pacer = pacer
        self._limits = limits
        self._update_budget = update_budget
        self._fallback = SlackSink(client, target, pacer=pacer, limits=limits)
        self._streams: dict[MessageRef, _Stream] = {}

    @property
    def limits(self) -> SinkLimits:
        """Slack's rules for this reply."""
        return self._limits

    @property
    def pacer(self) -> SlackPacer:
        """The channel budget and the stream (or, after a fallback, the update) budget."""
        return self._pacer

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """Start a stream in the thread; if Slack refuses one, post a normal message instead.

        A stream carries no buttons while it grows; the final ones come with chat.stopStream.
        """
        markdown = _settled(render_stream_markdown(content), final=final)
        try:
            response = await self._client.chat_startStream(
                channel=self._target.channel,
                thread_ts=self._target.thread_ts or "",
                markdown_text=markdown or None,
                recipient_user_id=self._target.user,
                recipient_team_id=self._target.team,
            )
        except SLACK_FAILURES as exc:
            error = translate(exc, "chat.startStream")
            if isinstance(error, RateLimited):
                self._pacer.blame(Budget.STREAM)
                raise error from exc
            log.info("native stream unavailable (%s); posting instead", error)
            self._use_update_budget()
            return await self._fallback.send(content, final=final, controls=controls)
        ts = str(response["ts"])
        self._streams[ts] = _Stream(shown=markdown, content=content, controls=controls)
        if final:
            await self._stop(ts, controls)
        return ts

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """Append what is new (the final part with stopStream); anything else uses chat.update."""
        stream = self._streams.get(ref)
        if stream is None:
            await self._fallback.edit(ref, content, final=final, controls=controls)
            return
        stream.content = content
        stream.controls = controls
        markdown = render_stream_markdown(content)
        if not markdown.startswith(stream.shown):
            await self._leave_stream(ref, content, final=final, stop=True, controls=controls)
            return
        markdown = _settled(markdown, final=final)
        delta = markdown[len(stream.shown) :]
        if len(delta) > _STREAM_TEXT_LIMIT:
            await self._leave_stream(ref, content, final=final, stop=True, controls=controls)
            return
        if not delta and not final:
            return
        method = "chat.stopStream" if final else "chat.appendStream"
        try:
            if final:
                await self._client.chat_stopStream(
                    channel=self._target.channel,
                    ts=ref,
                    markdown_text=delta or None,
                    blocks=control_blocks(controls) or None,
                )
            else:
                await self._client.chat_appendStream(
                    channel=self._target.channel, ts=ref, markdown_text=delta
                )
        except SLACK_FAILURES as exc:
            if _stream_over(exc):
                await self._leave_stream(ref, content, final=final, stop=False, controls=controls)
                return
            raise self._failed(exc, method) from exc
        stream.shown = markdown
        if final:
            self._streams.pop(ref, None)

    async def close(self) -> None:
        """Finish streams still open when the turn is over.

        The core writes a message only when its content changes, so the last (held-back) word
        and chat.stopStream may still be due; this spends budget like any other write.
        """
        for ref in list(self._streams):
            for _ in range(_CLOSE_ATTEMPTS):
                stream = self._streams.get(ref)
                if stream is None:
                    break
                try:
                    await self._pacer.acquire()
                    await self.edit(ref, stream.content, final=True, controls=stream.controls)
                    break
                except RateLimited as exc:
                    self._pacer.penalize(exc.retry_after)
                except PlatformError as exc:
                    log.warning("could not finish native stream %s: %s", ref, exc)
                    break
        await self._fallback.close()

    async def typing(self) -> None:
        """The assistant status is the only progress a stream shows before its first text."""
        await self._fallback.typing()

    async def _stop(self, ref: MessageRef, controls: Controls = NO_CONTROLS) -> None:
        """Finish the stream; Slack keeps the text appended so far."""
        self._streams.pop(ref, None)
        try:
            await self._client.chat_stopStream(
                channel=self._target.channel, ts=ref, blocks=control_blocks(controls) or None
            )
        except SLACK_FAILURES as exc:
            if _stream_over(exc):
                return  # already over: what it shows stays
            raise self._failed(exc, "chat.stopStream") from exc

    async def _leave_stream(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool,
        stop: bool,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """This message continues with chat.update (the stream expired or the text diverged)."""
        log.info("native stream %s continues with chat.update", ref)
        if stop:
            await self._stop(ref)
        self._streams.pop(ref, None)
        self._use_update_budget()
        self._fallback.forget(ref)
        await self._fallback.edit(ref, content, final=final, controls=controls)

    def _use_update_budget(self) -> None:
        """chat.update spends the Tier 3 workspace budget, not the stream one."""
        if self._pacer.workspace is not self._update_budget:
            self._pacer.use_workspace(self._update_budget)

    def _failed(self, exc: Exception, method: str) -> PlatformError:
        """Translate, and blame the stream budget for a 429."""
        error = translate(exc, method)
        if isinstance(error, RateLimited):
            self._pacer.blame(Budget.STREAM)
        return error


def _settled(markdown: str, *, final: bool) -> str:
    """What may be appended now: all of it when final, else up to the start of the last word.

    Slack can drop whitespace at the start of an appended chunk, so every chunk after the first
    starts with a word; holding back the last word also keeps half-written words off screen.
    """
    if final:
        return markdown
    cut = len(markdown.rstrip())
    while cut > 0 and not markdown[cut - 1].isspace():
        cut -= 1
    return markdown[:cut]


def _stream_over(exc: Exception) -> bool:
    """Slack ended this stream on its side (expired, or already stopped)."""
    return isinstance(exc, SlackApiError) and error_code(exc) in STREAM_OVER
