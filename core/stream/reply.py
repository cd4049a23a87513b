"""The one place that knows how to stream a reply into editable messages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.clock import Clock, LoopClock
from core.errors import MessageGone, MessageRejected, PlatformError, RateLimited
from core.phrases import Phrases
from core.settings import ShowReasoning
from core.sink import (
    NO_CONTROLS,
    Content,
    Controls,
    MessageRef,
    MessageSink,
    Segment,
    SegmentKind,
)
from core.stream.layout import MessageLayout

log = logging.getLogger(__name__)
_PHRASES = Phrases()  # English: a sink's own tests need no language


@dataclass(frozen=True, slots=True)
class ReplyTexts:
    """The few words the reply stream itself shows (``Phrases.thinking…``, translated)."""

    thinking: str = _PHRASES.thinking
    thinking_start: str = _PHRASES.thinking_start
    replaced: str = _PHRASES.replaced

    @classmethod
    def of(cls, phrases: Phrases) -> ReplyTexts:
        """The reply stream's words from a person's phrases."""
        return cls(phrases.thinking, phrases.thinking_start, phrases.replaced)


@dataclass(slots=True)
class ReplyStats:
    """What streaming cost, for metrics and benchmarks."""

    changes: int = 0  # updates to the reply; those superseded before a write were skipped
    sends: int = 0
    edits: int = 0
    rate_limited: int = 0
    failures: int = 0
    first_visible_at: float | None = None


@dataclass(slots=True)
class _Document:
    """Reasoning, answer and notes as they arrive."""

    reasoning: str = ""
    answer: str = ""
    notices: list[str] = field(default_factory=list)
    finished: bool = False


class ReplyStream:
    """Paces writes by time (latest text wins), rolls over long replies, survives 429s.

    The model stream is read by the caller, which only appends text here; a writer task turns
    the newest state into at most one send/edit per pacer slot, so generation never waits for
    the platform.
    """

    def __init__(
        self,
        sink: MessageSink,
        *,
        show_reasoning: ShowReasoning = ShowReasoning.PROGRESS,
        clock: Clock | None = None,
        texts: ReplyTexts | None = None,
        status_interval: float = 3.0,
        typing_interval: float = 4.5,
        final_attempts: int = 8,
        controls: Controls = NO_CONTROLS,
        reuse: Sequence[MessageRef] = (),
    ) -> None:
        """``controls`` ride on the newest message while the reply streams (Stop); ``reuse``
        are messages of an earlier answer this one is written into (regenerate, an edit)."""
        self._sink = sink
        self._mode = show_reasoning
        self._clock = clock or LoopClock()
        self._texts = texts or ReplyTexts()
        self._status_interval = status_interval
        self._typing_interval = typing_interval
        self._final_attempts = final_attempts
        limits = sink.limits
        self._layout = MessageLayout(limits.max_length, limits.unit)
        self._collapsible = limits.supports_collapsed
        self._status_line = limits.status_line
        self._doc = _Document()
        self._refs: list[MessageRef | None] = list(reuse)
        self._reused = len(self._refs)
        self._shown: list[Content] = []
        self._buttons: list[Controls] = []
        self._finalized: list[bool] = []
        self._streaming_controls = controls
        self._final_controls = NO_CONTROLS
        self._retired: Content = (Segment(SegmentKind.NOTICE, self._texts.replaced),)
        self._needs_final = limits.needs_final
        self._changed = asyncio.Event()
        self._started_at = self._clock.now()
        self._writer: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = ReplyStats()

    # -- what the caller feeds in -------------------------------------------------------------

    def add_reasoning(self, text: str) -> None:
        """More reasoning arrived."""
        self._doc.reasoning += text
        if self._mode is ShowReasoning.FULL:
            self.stats.changes += 1
            self._changed.set()

    def add_answer(self, text: str) -> None:
        """More of the answer arrived.

        Whitespace alone changes nothing the user sees (the answer is shown stripped), so it
        must not wake the writer: vLLM's reasoning parser sends "\\n\\n" first, and that wake-up
        used to spend the pacing slot on a "Thinking… N s" refresh, holding the first visible
        answer token back by up to a whole interval (measured: 989 ms at Telegram's 1 s).
        """
        self._doc.answer += text
        self.stats.changes += 1  # an update that needed no write of its own counts as skipped
        if text.strip():
            self._changed.set()

    def add_notice(self, text: str) -> None:
        """A note from Parley under the reply (stopped, trimmed history, error)."""
        self._doc.notices.append(text)
        self.stats.changes += 1
        self._changed.set()

    @property
    def answer(self) -> str:
        """The answer as the user sees it."""
        return self._doc.answer.strip()

    @property
    def reasoning(self) -> str:
        """Everything the model reasoned (never stored)."""
        return self._doc.reasoning

    @property
    def skipped_writes(self) -> int:
        """Updates that never needed their own send/edit because newer text replaced them."""
        return max(0, self.stats.changes - self.stats.sends - self.stats.edits)

    @property
    def refs(self) -> list[MessageRef]:
        """The messages that show this reply, in order (for regenerating it in place later)."""
        return [
            ref
            for ref, shown in zip(self._refs, self._shown, strict=False)
            if ref is not None and shown != self._retired
        ]

    def end_with(self, controls: Controls) -> None:
        """The buttons the last message keeps once the reply is final (none: Stop goes away)."""
        if controls != self._final_controls:
            self._final_controls = controls
            self.stats.changes += 1  # an update like any other: it may ride on a write
        self._changed.set()

    @property
    def has_output(self) -> bool:
        """Whether anything beyond the status line was received."""
        return bool(self._doc.reasoning or self._doc.answer.strip())

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Show that a reply is coming and begin writing."""
        self._started_at = self._clock.now()
        self._writer = asyncio.create_task(self._write_loop(), name="reply writer")
        self._ticker = asyncio.create_task(self._tick_loop(), name="reply ticker")
        self._changed.set()

    async def finish(self) -> list[Content]:
        """Land the final text (bounded retries) and return what each message shows."""
        self._doc.finished = True
        self._closing = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._changed.set()
        if self._writer is None or self._writer.done():
            dead = self._writer
            if dead is not None and not dead.cancelled() and (error := dead.exception()):
                log.error("the reply writer had stopped", exc_info=error)
            self._writer = asyncio.create_task(self._write_loop(), name="reply writer")
        await self._writer
        return list(self._shown)

    async def cancel(self) -> None:
        """Stop writing at once (used only when the whole turn is being torn down)."""
        for task in (self._ticker, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- the document -------------------------------------------------------------------------

    def document(self) -> list[Segment]:
        """What the reply should show right now, by SHOW_REASONING and progress."""
        doc = self._doc
        answer = doc.answer.strip()
        segments: list[Segment] = []
        if self._mode is ShowReasoning.FULL and doc.reasoning.strip():
            segments.append(Segment(SegmentKind.REASONING, doc.reasoning.strip()))
        if answer:
            segments.append(Segment(SegmentKind.ANSWER, answer))
            if (
                doc.finished
                and self._mode is ShowReasoning.COLLAPSED
                and self._collapsible
                and doc.reasoning.strip()
            ):
                segments.append(Segment(SegmentKind.REASONING_COLLAPSED, doc.reasoning.strip()))
        elif (
            not doc.finished
            and self._mode is not ShowReasoning.OFF
            and self._status_line
            and not segments
        ):
            segments.append(Segment(SegmentKind.STATUS, self._status_text()))
        segments.extend(Segment(SegmentKind.NOTICE, note) for note in doc.notices)
        return segments

    def _status_text(self) -> str:
        """ "Thinking… 12 s", counted from the start of the reply."""
        seconds = int(self._clock.now() - self._started_at)
        if seconds < 1:
            return self._texts.thinking_start
        return self._texts.thinking.format(seconds=seconds)

    # -- writing ------------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        """Refresh the thinking status and the typing indicator while nothing else shows."""
        next_typing = self._clock.now()
        while True:
            now = self._clock.now()
            if not self._doc.answer.strip() and now >= next_typing:
                await self._typing()
                next_typing = now + self._typing_interval
            if not self._doc.answer.strip() and self._mode is not ShowReasoning.OFF:
                self._changed.set()
            await self._clock.sleep(min(self._status_interval, self._typing_interval))

    async def _typing(self) -> None:
        """Best-effort "typing…"; it must never break a reply."""
        try:
            await self._sink.typing()
        except PlatformError as exc:
            log.debug("typing indicator failed: %s", exc)

    def _controls_at(self, index: int, count: int) -> Controls:
        """Buttons go under the newest message only: Stop while streaming, then the final ones."""
        if index != count - 1:
            return NO_CONTROLS
        return self._final_controls if self._closing else self._streaming_controls

    def _pending(self) -> tuple[int, Content, Controls] | None:
        """The first message whose shown content or buttons differ from what they should be."""
        wanted = self._layout.messages(self.document())
        count = len(wanted)
        for index, content in enumerate(wanted):
            controls = self._controls_at(index, count)
            if (
                index >= len(self._shown)
                or self._shown[index] != content
                or self._buttons[index] != controls
            ):
                return index, content, controls
        if self._closing and self._needs_final:
            for index, content in enumerate(wanted):
                if not self._finalized[index]:
                    return index, content, self._controls_at(index, count)
        if self._closing:  # messages of the earlier answer this one no longer needs
            for index in range(count, self._reused):
                shown = self._shown[index] if index < len(self._shown) else None
                if self._refs[index] is not None and shown != self._retired:
                    return index, self._retired, NO_CONTROLS
        return None

    async def _write_loop(self) -> None:
        """One send/edit per pacer slot, always with the newest text."""
        failures = 0
        while True:
            if self._pending() is None:
                if self._closing:
                    return
                self._changed.clear()
                await self._changed.wait()
                continue
            await self._sink.pacer.acquire()
            pending = self._pending()
            if pending is None:
                continue
            index, content, controls = pending
            if not self._closing:
                failures = 0  # only the final text's own attempts are bounded
            try:
                await self._apply(index, content, controls)
                failures = 0
            except RateLimited as exc:
                self.stats.rate_limited += 1
                self._sink.pacer.penalize(exc.retry_after)
                failures += 1
            except MessageGone:
                self._refs[index] = None  # deleted by the user: continue in a new message
                failures += 1
            except MessageRejected as exc:
                log.warning("the platform rejected a reply message: %s", exc)
                self._mark_shown(index, content, controls)  # never retry the same content
                self._finalized[index] = True
                self.stats.failures += 1
            except PlatformError as exc:
                log.warning("writing a reply failed: %s", exc)
                self.stats.failures += 1
                failures += 1
            except Exception:  # a defect (a renderer, a sink): the reply goes on without it
                log.exception("writing a reply message failed unexpectedly")
                self._mark_shown(index, content, controls)  # never retry what cannot be written
                self._finalized[index] = True
                self.stats.failures += 1
            if self._closing and failures >= self._final_attempts:
                log.error("giving up on the final text after %d failed attempts", failures)
                return

    async def _apply(self, index: int, content: Content, controls: Controls) -> None:
        """Send message ``index`` or edit it to ``content`` with ``controls`` under it."""
        final = self._closing or index < len(self._layout.frozen)
        ref = self._refs[index] if index < len(self._refs) else None
        if ref is None:
            new_ref = await self._sink.send(content, final=final, controls=controls)
            self.stats.sends += 1
            if index < len(self._refs):
                self._refs[index] = new_ref
            else:
                self._refs.append(new_ref)
        else:
            await self._sink.edit(ref, content, final=final, controls=controls)
            self.stats.edits += 1
        if self.stats.first_visible_at is None and any(
            s.kind is SegmentKind.ANSWER for s in content
        ):
            self.stats.first_visible_at = self._clock.now()
        self._mark_shown(index, content, controls)
        self._finalized[index] = final

    def _mark_shown(self, index: int, content: Content, controls: Controls) -> None:
        """Remember what message ``index`` shows now (a reused one's earlier text is unknown)."""
        while len(self._shown) < index:
            self._shown.append(())
            self._buttons.append(NO_CONTROLS)
            self._finalized.append(False)
        if index < len(self._shown):
            self._shown[index] = content
            self._buttons[index] = controls
        else:
            self._shown.append(content)
            self._buttons.append(controls)
            self._finalized.append(False)
        while len(self._refs) < len(self._shown):
            self._refs.append(None)
