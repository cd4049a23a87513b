"""What the chat service needs from conversation memory."""

from __future__ import annotations

from typing import Protocol

from core.conversation import ConversationKey, StoredMessage, StoreStats, Turn


class ConversationStore(Protocol):
    """Per-conversation history; a turn is stored whole or not at all."""

    async def load(self, key: ConversationKey) -> list[StoredMessage]:
        """The conversation's messages, oldest first (unreadable entries are skipped)."""
        ...

    async def append(self, key: ConversationKey, turn: Turn, *, fence: str | None = None) -> None:
        """Store a turn atomically, cap the history and renew its time to live.

        With ``fence`` (the turn's lease grant) the write happens only while that grant is the
        conversation's newest; otherwise it raises ``LeaseLost`` and stores nothing.
        """
        ...

    async def replace_last(
        self, key: ConversationKey, turn: Turn, *, fence: str | None = None
    ) -> None:
        """Swap the newest turn for ``turn`` atomically (used by retry), fenced like append."""
        ...

    async def clear(self, key: ConversationKey) -> bool:
        """Forget one conversation; True if there was one."""
        ...

    async def clear_user(self, platform: str, user: str) -> int:
        """Forget every conversation of one user on a platform."""
        ...

    async def clear_chat(self, platform: str, chat: str) -> int:
        """Forget every conversation in one chat or channel."""
        ...

    async def clear_all(self) -> int:
        """Forget everything Parley stored."""
        ...

    async def stats(self) -> StoreStats:
        """Counts for operators."""
        ...
