"""A chat's own settings (persona, instructions): whose they are, and what keeps them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.commands import Caller

# A private chat's settings are its person's: named by the user, so /forget finds them at once.
_PRIVATE = "@"
MAX_INSTRUCTIONS = 2_000  # characters


@dataclass(frozen=True, slots=True)
class ChatScope:
    """Where settings apply: a group chat or channel, or one person's private chat."""

    platform: str
    chat: str

    @classmethod
    def of(cls, caller: Caller) -> ChatScope:
        """In a group the chat's (every member follows them); in private the person's."""
        if caller.group and caller.chat:
            return cls(caller.platform, caller.chat)
        return cls.private(caller.platform, caller.user_id)

    @classmethod
    def private(cls, platform: str, user: str) -> ChatScope:
        """A person's private chat with Parley on a platform."""
        return cls(platform, _PRIVATE + user)


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """What a chat chose; empty means the defaults (the default persona, no instructions)."""

    persona: str = ""
    instructions: str = ""


class ChatSettingsStore(Protocol):
    """Keeps each chat's settings; kept by /reset, removed by /forget."""

    async def get(self, scope: ChatScope) -> ChatSettings:
        """The chat's settings (defaults if it has none)."""
        ...

    async def set_persona(self, scope: ChatScope, persona: str) -> None:
        """Remember the chat's persona."""
        ...

    async def set_instructions(self, scope: ChatScope, instructions: str) -> bool:
        """Set the chat's instructions ('' removes them); True if something changed."""
        ...

    async def delete(self, scope: ChatScope) -> bool:
        """Forget everything the chat chose; True if it had settings."""
        ...

    async def persona_counts(self) -> dict[str, int]:
        """How many chats chose each persona (for operators)."""
        ...
