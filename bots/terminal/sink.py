"""Terminal sinks: a live-updating one for people and a final-text one for scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from core.pacing import IntervalPacer
from core.settings import ShowReasoning
from core.sink import NO_CONTROLS, Content, Controls, MessageRef, Pacer, SegmentKind, SinkLimits

_LIMITS = SinkLimits(max_length=60_000, min_interval=0.05, supports_collapsed=False)


def _renderable(content: Content) -> RenderableType:
    """Markdown for the answer, dim text for reasoning and notes."""
    parts: list[RenderableType] = []
    for segment in content:
        if segment.kind is SegmentKind.ANSWER:
            parts.append(Markdown(segment.text))
        elif segment.kind in (SegmentKind.REASONING, SegmentKind.REASONING_COLLAPSED):
            parts.append(Text(segment.text, style="dim italic"))
        else:
            parts.append(Text(segment.text, style="dim"))
    return Group(*parts)


class LiveTerminalSink:
    """Redraws the newest message in place as it streams (rich.Live)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._pacer = IntervalPacer(_LIMITS.min_interval)
        self._live: Live | None = None
        self._count = 0

    @property
    def limits(self) -> SinkLimits:
        """Generous: a terminal has no message limit worth rolling over for."""
        return _LIMITS

    @property
    def pacer(self) -> Pacer:
        """About 20 redraws a second."""
        return self._pacer

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """Start a new live region (the previous one stays on screen as it was)."""
        self.close()
        self._live = Live(
            _renderable(content),
            console=self._console,
            auto_refresh=False,
            vertical_overflow="visible",
        )
        self._live.start(refresh=True)
        self._count += 1
        return str(self._count)

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """Redraw the live region if it is the message being edited."""
        if self._live is not None and ref == str(self._count):
            self._live.update(_renderable(content), refresh=True)

    async def typing(self) -> None:
        """The thinking status already shows progress."""

    def close(self) -> None:
        """Freeze the current live region."""
        if self._live is not None:
            self._live.stop()
            self._live = None


@dataclass
class TranscriptSink:
    """Keeps each message's final content and prints it when the turn ends (stdin not a TTY)."""

    show_reasoning: ShowReasoning = ShowReasoning.PROGRESS
    messages: dict[MessageRef, Content] = field(default_factory=dict)
    _pacer: IntervalPacer = field(default_factory=lambda: IntervalPacer(0.0))

    @property
    def limits(self) -> SinkLimits:
        """No rollover needed."""
        return _LIMITS

    @property
    def pacer(self) -> Pacer:
        """No pacing: nothing is shown until the end."""
        return self._pacer

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """Record a message."""
        ref = str(len(self.messages) + 1)
        self.messages[ref] = content
        return ref

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """Record the newest content."""
        self.messages[ref] = content

    async def typing(self) -> None:
        """Nothing to show."""

    def flush(self, out: TextIO) -> None:
        """Print the final text of every message; reasoning only with SHOW_REASONING=full."""
        for content in self.messages.values():
            for segment in content:
                if segment.kind is SegmentKind.STATUS:
                    continue
                if segment.kind is SegmentKind.REASONING and (
                    self.show_reasoning is not ShowReasoning.FULL
                ):
                    continue
                out.write(segment.text.rstrip() + "\n")
        out.flush()
        self.messages.clear()
