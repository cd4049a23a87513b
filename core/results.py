"""How a turn ended, for adapters, metrics and tests."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.errors import BotError


class Outcome(StrEnum):
    """How a turn ended."""

    ANSWERED = "answered"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    BUSY = "busy"
    FAILED = "failed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What happened to one message."""

    outcome: Outcome
    answer: str = ""
    error: BotError | None = None
    saved: bool = False
    dropped_turns: int = 0
    usage_prompt: int = 0
    usage_completion: int = 0
