"""Bounded intake: a few turns may wait per conversation, in arrival order; more are turned away.

Without a bound every message of a flood becomes a task waiting up to the lease for its turn:
memory grows with the flood and the chat's send budget is spent on notices.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from core.conversation import ConversationKey


@dataclass(slots=True)
class Ticket:
    """One admitted message's place in its conversation's line."""

    key: ConversationKey
    previous: asyncio.Event | None
    mine: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for_previous(self) -> None:
        """Until the message before this one has taken its place at the lease (or left)."""
        if self.previous is not None:
            await self.previous.wait()

    def pass_on(self) -> None:
        """Let the next message follow; call right before queueing for the lease."""
        self.mine.set()


class Intake:
    """Per conversation in this process: one turn running plus ``max_waiting`` waiting."""

    def __init__(self, max_waiting: int = 3) -> None:
        self._max = max_waiting
        self._count: dict[ConversationKey, int] = {}
        self._tail: dict[ConversationKey, asyncio.Event] = {}

    def enter(self, key: ConversationKey) -> Ticket | None:
        """A place in line, or None when the line is full (no await: arrival order is kept)."""
        count = self._count.get(key, 0)
        if count > self._max:
            return None
        self._count[key] = count + 1
        ticket = Ticket(key, self._tail.get(key))
        self._tail[key] = ticket.mine
        return ticket

    def leave(self, ticket: Ticket) -> None:
        """The message's turn ended (or it was refused); forget the line when it is empty."""
        ticket.pass_on()
        left = self._count[ticket.key] - 1
        if left:
            self._count[ticket.key] = left
        else:
            del self._count[ticket.key]
            self._tail.pop(ticket.key, None)

    def waiting(self, key: ConversationKey) -> int:
        """Messages in line for this conversation, the running one included."""
        return self._count.get(key, 0)

    def __len__(self) -> int:
        """Conversations with someone in line (memory stays bounded by active ones)."""
        return len(self._count)
