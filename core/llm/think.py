"""Separates reasoning from the answer when the server does not (no reasoning parser)."""

from __future__ import annotations

from core.llm.events import ReasoningDelta, TextDelta

_OPEN = "<think>"
_CLOSE = "</think>"


class ThinkSplitter:
    """Everything before the first ``</think>`` is reasoning; chunk boundaries may fall anywhere.

    The R1 chat template pre-fills ``<think>\\n``, so the model output usually holds only the
    closing tag; a leading ``<think>`` (older templates) is dropped.
    """

    def __init__(self) -> None:
        self._in_reasoning = True
        self._buffer = ""
        self._at_start = True

    def feed(self, chunk: str) -> list[ReasoningDelta | TextDelta]:
        """Classify a chunk, holding back a possible partial tag until it is decided."""
        if not self._in_reasoning:
            return [TextDelta(chunk)] if chunk else []
        self._buffer += chunk
        events: list[ReasoningDelta | TextDelta] = []
        if self._at_start:
            stripped = self._buffer.lstrip()
            if _OPEN.startswith(stripped) and len(stripped) < len(_OPEN):
                return events  # could still become the opening tag
            if stripped.startswith(_OPEN):
                self._buffer = stripped[len(_OPEN) :]
            self._at_start = False
        index = self._buffer.find(_CLOSE)
        if index >= 0:
            reasoning, answer = self._buffer[:index], self._buffer[index + len(_CLOSE) :]
            self._buffer = ""
            self._in_reasoning = False
            if reasoning:
                events.append(ReasoningDelta(reasoning))
            if answer:
                events.append(TextDelta(answer))
            return events
        keep = _partial_suffix(self._buffer, _CLOSE)
        emit = self._buffer[: len(self._buffer) - keep]
        self._buffer = self._buffer[len(self._buffer) - keep :]
        if emit:
            events.append(ReasoningDelta(emit))
        return events

    def flush(self) -> list[ReasoningDelta | TextDelta]:
        """End of stream: a held-back fragment was reasoning after all."""
        rest, self._buffer = self._buffer, ""
        if rest and self._in_reasoning:
            return [ReasoningDelta(rest)]
        return [TextDelta(rest)] if rest else []


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
