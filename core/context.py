"""Fits a conversation into the model's context: newest whole turns first, counts precomputed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.conversation import Role, StoredMessage
from core.errors import BotError
from core.llm.events import ChatMessage
from core.tokens import ASSISTANT_OVERHEAD, PROMPT_OVERHEAD, USER_OVERHEAD

INSTRUCTION_SEPARATOR = "\n\n"
_SEPARATOR_TOKENS = 1


class MessageTooLong(BotError):
    """A single message is larger than the whole prompt budget; sending it would only fail."""

    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"message of {tokens} tokens exceeds the prompt budget of {limit}")
        self.tokens = tokens
        self.limit = limit


@dataclass(frozen=True, slots=True)
class FittedPrompt:
    """The messages to send and what fitting decided."""

    messages: list[ChatMessage]
    prompt_tokens: int
    kept_messages: int
    dropped_turns: int
    first_drop: bool  # the previous turn still had everything: tell the user now


def _cost(message: StoredMessage) -> int:
    """A stored message's share of the prompt, template tokens included."""
    overhead = USER_OVERHEAD if message.role is Role.USER else ASSISTANT_OVERHEAD
    return message.tokens + overhead


def _whole_turns(history: Sequence[StoredMessage]) -> list[tuple[StoredMessage, ...]]:
    """Group history into turns that start with a user message (stray entries are dropped)."""
    turns: list[tuple[StoredMessage, ...]] = []
    current: list[StoredMessage] = []
    for message in history:
        if message.role is Role.USER:
            if current:
                turns.append(tuple(current))
            current = [message]
        elif current:
            current.append(message)
    if current:
        turns.append(tuple(current))
    return [turn for turn in turns if len(turn) >= 2]


def _previous_prompt(turns: Sequence[tuple[StoredMessage, ...]], folded: int) -> int:
    """What the previous request held: the older turns, the last question and the instructions.

    Its answer was not part of it, so a long answer is what can make this turn the first to drop.
    """
    if not turns:
        return 0
    *older, last = turns
    return PROMPT_OVERHEAD + folded + sum(_cost(m) for t in older for m in t) + _cost(last[0])


def fit(
    history: Sequence[StoredMessage],
    new_message: StoredMessage,
    *,
    budget: int,
    instructions: str = "",
    instruction_tokens: int = 0,
) -> FittedPrompt:
    """Keep the newest whole turns that fit ``budget`` prompt tokens; oldest go first."""
    folded = instruction_tokens + _SEPARATOR_TOKENS if instructions else 0
    fixed = PROMPT_OVERHEAD + _cost(new_message) + folded
    if fixed > budget:
        raise MessageTooLong(new_message.tokens, max(0, budget - (fixed - new_message.tokens)))
    turns = _whole_turns(history)
    used = fixed
    kept: list[tuple[StoredMessage, ...]] = []
    for turn in reversed(turns):
        cost = sum(_cost(m) for m in turn)
        if used + cost > budget:
            break
        used += cost
        kept.append(turn)
    kept.reverse()
    dropped = len(turns) - len(kept)
    first_drop = dropped > 0 and _previous_prompt(turns, folded) <= budget
    messages: list[ChatMessage] = [
        ChatMessage(m.role.value, m.content) for turn in kept for m in turn
    ]
    messages.append(ChatMessage(Role.USER.value, new_message.content))
    if instructions:
        first = messages[0]
        messages[0] = ChatMessage(first.role, instructions + INSTRUCTION_SEPARATOR + first.content)
    return FittedPrompt(
        messages=messages,
        prompt_tokens=used,
        kept_messages=len(messages),
        dropped_turns=dropped,
        first_drop=first_drop,
    )
