"""A MessageSink that behaves like a strict messenger and records everything it is asked to do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from core.clock import Clock, LoopClock
from core.errors import MessageGone, MessageRejected, RateLimited
from core.pacing import IntervalPacer
from core.sink import NO_CONTROLS, Content, Controls, MessageRef, SinkLimits, measure, plain

_EPSILON = 1e-5  # clocks have a resolution (looptime: 1 µs); that is not a pacing fault


class Op(StrEnum):
    """What the reply stream asked the sink to do."""

    SEND = "send"
    EDIT = "edit"
    TYPING = "typing"


class Outcome(StrEnum):
    """How the simulated platform answered a call."""

    OK = "ok"
    NOOP = "noop"  # an edit to the content the message already shows
    RATE_LIMITED = "rate_limited"
    GONE = "gone"
    REJECTED = "rejected"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Call:
    """One call as the platform saw it, stamped with the (virtual) time it arrived."""

    at: float
    op: Op
    ref: MessageRef | None
    content: Content
    final: bool
    outcome: Outcome

    @property
    def text(self) -> str:
        """The content as plain text."""
        return plain(self.content)


@dataclass(slots=True)
class RecordingSink:
    """Enforces a platform's limits and pacing, records every call, and injects faults.

    It implements ``core.sink.MessageSink`` structurally (no inheritance), like a real adapter.
    """

    sink_limits: SinkLimits
    clock: Clock = field(default_factory=LoopClock)
    calls: list[Call] = field(default_factory=list)
    shown: dict[MessageRef, Content] = field(default_factory=dict)  # what each message shows
    buttons: dict[MessageRef, Controls] = field(default_factory=dict)  # and the buttons under it
    violations: list[str] = field(default_factory=list)
    _pacer: IntervalPacer | None = None
    _faults: list[Callable[[], Exception]] = field(default_factory=list)
    _gone: set[MessageRef] = field(default_factory=set)
    _last_write: float | None = None
    _blocked_until: float = float("-inf")
    _next_ref: int = 1

    # -- the MessageSink protocol ---------------------------------------------------------------

    @property
    def limits(self) -> SinkLimits:
        """The platform's rules for this target."""
        return self.sink_limits

    @property
    def pacer(self) -> IntervalPacer:
        """One write per ``min_interval`` on the sink's clock, created on first use."""
        if self._pacer is None:
            self._pacer = IntervalPacer(self.sink_limits.min_interval, self.clock)
        return self._pacer

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """Post a new message, as a platform would: checked, paced, maybe failing."""
        self._write_arrived(Op.SEND, None, content, final)
        ref = f"m{self._next_ref}"
        self._next_ref += 1
        self.shown[ref] = content
        self.buttons[ref] = controls
        self._record(Op.SEND, ref, content, final, Outcome.OK)
        return ref

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """Replace a message's content; the same content again is a no-op, not an error."""
        self._write_arrived(Op.EDIT, ref, content, final)
        if ref in self._gone or ref not in self.shown:
            self._record(Op.EDIT, ref, content, final, Outcome.GONE)
            raise MessageGone(f"message {ref} to edit not found")
        same = self.shown[ref] == content and self.buttons.get(ref, NO_CONTROLS) == controls
        outcome = Outcome.NOOP if same else Outcome.OK
        self.shown[ref] = content
        self.buttons[ref] = controls
        self._record(Op.EDIT, ref, content, final, outcome)

    async def typing(self) -> None:
        """Record the chat action; it is not a message and spends no message budget."""
        self._record(Op.TYPING, None, (), False, Outcome.OK)

    # -- fault injection ------------------------------------------------------------------------

    def rate_limit_next(self, calls: int, retry_after: float) -> None:
        """The next ``calls`` sends/edits answer 429 with ``retry_after``."""
        self._faults.extend(lambda: RateLimited(retry_after) for _ in range(calls))

    def fail_next(self, calls: int, error: Callable[[], Exception]) -> None:
        """The next ``calls`` sends/edits raise ``error()`` (a non-PlatformError is a defect)."""
        self._faults.extend(error for _ in range(calls))

    def delete(self, ref: MessageRef) -> None:
        """The user deleted message ``ref``: it disappears and editing it raises MessageGone."""
        self._gone.add(ref)
        self.shown.pop(ref, None)

    # -- what tests look at ---------------------------------------------------------------------

    @property
    def writes(self) -> list[Call]:
        """Every send and edit the platform received, failed ones included."""
        return [call for call in self.calls if call.op is not Op.TYPING]

    @property
    def successful(self) -> list[Call]:
        """Sends and edits that changed what a message shows."""
        return [call for call in self.writes if call.outcome is Outcome.OK]

    def texts(self) -> list[str]:
        """What each surviving message shows, as plain text, in the order they were posted."""
        return [plain(content) for content in self.shown.values()]

    def last_write_to(self, ref: MessageRef) -> Call:
        """The last successful send or edit of ``ref``."""
        return [c for c in self.writes if c.ref == ref and c.outcome in _LANDED][-1]

    # -- the simulated platform -----------------------------------------------------------------

    def _write_arrived(self, op: Op, ref: MessageRef | None, content: Content, final: bool) -> None:
        """Check pacing, inject a queued fault, then enforce the length rules."""
        now = self.clock.now()
        self._check_pacing(now)
        self._last_write = now
        if self._faults:
            error = self._faults.pop(0)()
            if isinstance(error, RateLimited):
                self._blocked_until = max(self._blocked_until, now + error.retry_after)
            self._record(op, ref, content, final, _outcome_of(error))
            raise error
        text = plain(content)
        size = measure(text, self.sink_limits.unit)
        if not text.strip() or size > self.sink_limits.max_length:
            self._record(op, ref, content, final, Outcome.REJECTED)
            raise MessageRejected(f"message of {size} {self.sink_limits.unit} rejected")

    def _check_pacing(self, now: float) -> None:
        """Note any write that comes too soon after the previous one or inside a 429 wait."""
        interval = self.sink_limits.min_interval
        if self._last_write is not None and now - self._last_write < interval - _EPSILON:
            gap = now - self._last_write
            self.violations.append(f"write at {now:.3f} s only {gap:.3f} s after the previous")
        if now < self._blocked_until - _EPSILON:
            self.violations.append(f"write at {now:.3f} s before retry_after ended")

    def _record(
        self, op: Op, ref: MessageRef | None, content: Content, final: bool, outcome: Outcome
    ) -> None:
        """Append one call to the log."""
        self.calls.append(Call(self.clock.now(), op, ref, content, final, outcome))


_LANDED = (Outcome.OK, Outcome.NOOP)


def _outcome_of(error: Exception) -> Outcome:
    """The log's name for an injected error."""
    if isinstance(error, RateLimited):
        return Outcome.RATE_LIMITED
    if isinstance(error, MessageGone):
        return Outcome.GONE
    if isinstance(error, MessageRejected):
        return Outcome.REJECTED
    return Outcome.FAILED
