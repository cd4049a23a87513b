"""The seam between the core's reply stream and a platform: a sink bound to one reply target."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class LengthUnit(StrEnum):
    """How a platform counts message length."""

    CODEPOINTS = "codepoints"
    UTF16 = "utf16"


def measure(text: str, unit: LengthUnit) -> int:
    """Length of ``text`` in the platform's own unit (Telegram counts UTF-16 code units)."""
    if unit is LengthUnit.UTF16:
        return len(text.encode("utf-16-le")) // 2 if not text.isascii() else len(text)
    return len(text)


@dataclass(frozen=True, slots=True)
class SinkLimits:
    """What a platform allows one reply target; the reply stream never exceeds it."""

    max_length: int
    unit: LengthUnit = LengthUnit.CODEPOINTS
    min_interval: float = 1.0
    supports_collapsed: bool = False
    # Native streams (drafts, chat.startStream) must see final=True once per message to finish.
    needs_final: bool = False
    # False where the platform shows progress itself (Slack's assistant status line): no
    # "Thinking…" placeholder message then, the first message is the answer.
    status_line: bool = True


class SegmentKind(StrEnum):
    """What a piece of a message is, so each platform can render it in its own way."""

    ANSWER = "answer"  # the model's answer, Markdown
    REASONING = "reasoning"  # reasoning shown as it streams (SHOW_REASONING=full)
    REASONING_COLLAPSED = "reasoning_collapsed"  # reasoning under the answer, collapsed
    STATUS = "status"  # transient progress, e.g. "Thinking… 12 s"
    NOTICE = "notice"  # a short note from Parley itself (stopped, error, history trimmed)


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of one kind of text inside one outgoing message."""

    kind: SegmentKind
    text: str


Content = tuple[Segment, ...]
MessageRef = str


class Control(StrEnum):
    """A button under an answer: what pressing it asks of the answer."""

    STOP = "stop"  # while it streams
    REGENERATE = "regenerate"  # after it ended: answer the same question again
    CONTINUE = "continue"  # after the token limit cut it: go on where it stopped


@dataclass(frozen=True, slots=True)
class Button:
    """One control as drawn: the label is already in the reader's language."""

    control: Control
    label: str


@dataclass(frozen=True, slots=True)
class Controls:
    """The buttons a message carries, and the answer they act on (empty: none)."""

    answer: str = ""
    buttons: tuple[Button, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.answer and self.buttons)


NO_CONTROLS = Controls()


def plain(content: Sequence[Segment]) -> str:
    """The content as plain text, for sinks without formatting and for fallbacks."""
    return "\n\n".join(segment.text for segment in content if segment.text)


class Pacer(Protocol):
    """A send/edit budget shared by everything that writes to the same place."""

    async def acquire(self) -> None:
        """Wait until one more send or edit is allowed."""
        ...

    def penalize(self, retry_after: float) -> None:
        """The platform answered 429: nobody on this budget writes for ``retry_after`` s."""
        ...


class MessageSink(Protocol):
    """Writes one reply into a platform; raises only ``core.errors`` types."""

    @property
    def limits(self) -> SinkLimits:
        """The platform's rules for this target."""
        ...

    @property
    def pacer(self) -> Pacer:
        """The budget this target shares (per chat, per workspace, across replicas)."""
        ...

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """Post a new message and return a reference for later edits.

        ``controls`` are the buttons under it; a sink whose platform has none ignores them.
        """
        ...

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """Replace a message's content and buttons (none: removed); unchanged is a no-op."""
        ...

    async def typing(self) -> None:
        """Show that a reply is on its way (a chat action or status); best effort."""
        ...
