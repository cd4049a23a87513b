"""Typed events a model stream yields; the rest of the core never sees raw SSE chunks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning (the part inside <think>)."""

    text: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the visible answer."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token accounting as reported by the server."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Finished:
    """The stream ended; ``reason`` is the server's finish_reason (stop, length, …)."""

    reason: str
    usage: Usage | None = None


StreamEvent = ReasoningDelta | TextDelta | Finished


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a prompt as the OpenAI-compatible API takes it."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Per-request generation settings."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 4096
    model: str = ""  # a persona's model; '' = the configured (or first served) one
