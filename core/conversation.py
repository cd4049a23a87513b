"""The values that cross the adapter/core seam: who is talking, where, and what was said."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Identifies one conversation; history, locks and stop signals hang off it."""

    platform: str
    chat: str
    user: str
    thread: str = ""

    def __str__(self) -> str:
        thread = f"/{self.thread}" if self.thread else ""
        return f"{self.platform}:{self.chat}{thread}:{self.user}"


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A text message an adapter has already filtered and normalised."""

    key: ConversationKey
    text: str
    user_id: str
    display_name: str = ""
    message_id: str = ""
    workspace: str = ""  # Slack team id, for workspace allowlists
    group: bool = False  # written in a group chat or channel, not a private chat
    language: str = ""  # the sender's language as their platform names it, e.g. "zh-hans"


class Role(StrEnum):
    """Chat roles Parley stores; there is deliberately no system role (DeepSeek-R1 guidance)."""

    USER = "user"
    ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One history entry with its token count, so fitting never re-tokenises history."""

    role: Role
    content: str
    tokens: int
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Turn:
    """A user message and the answer to it; stored together or not at all.

    ``id`` makes saving idempotent: a save retried after a lost reply from the store (the
    first attempt may have been applied) stores the turn once.
    """

    user: StoredMessage
    assistant: StoredMessage
    id: str = field(default_factory=lambda: secrets.token_hex(8))

    def messages(self) -> tuple[StoredMessage, StoredMessage]:
        """Both halves in the order they are stored."""
        return (self.user, self.assistant)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What the store holds, for /stats and `parley admin stats`."""

    conversations: int = 0
    messages: int = 0
    tokens: int = 0
    by_platform: dict[str, int] = field(default_factory=dict)
