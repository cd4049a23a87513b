"""Who administers a group chat, as its platform says, asked once a minute at most per person."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from core.clock import Clock, LoopClock
from core.errors import BotError

log = logging.getLogger(__name__)

CACHE_SECONDS = 60.0  # a promotion or demotion counts after a minute at most
_CACHE_SIZE = 10_000


class ChatRoles(Protocol):
    """An adapter's lookup: whether a person administers a chat on its platform."""

    async def is_chat_admin(self, chat: str, user: str) -> bool:
        """Ask the platform; raises a BotError when it cannot tell."""
        ...


@dataclass
class ChatAdmins:
    """The platforms' answers, cached briefly; a platform that cannot tell means 'no'."""

    clock: Clock = field(default_factory=LoopClock)
    seconds: float = CACHE_SECONDS
    _roles: dict[str, ChatRoles] = field(default_factory=dict)
    _known: dict[tuple[str, str, str], tuple[bool, float]] = field(default_factory=dict)

    def register(self, platform: str, roles: ChatRoles) -> None:
        """An adapter says how its platform answers."""
        self._roles[platform] = roles

    async def __call__(self, platform: str, chat: str, user: str) -> bool:
        """Whether ``user`` administers ``chat`` (False where Parley cannot ask)."""
        roles = self._roles.get(platform)
        if roles is None or not chat:
            return False
        now = self.clock.now()
        known = self._known.get((platform, chat, user))
        if known is not None and known[1] > now:
            return known[0]
        try:
            answer = await roles.is_chat_admin(chat, user)
        except BotError as exc:
            log.warning("cannot tell whether %s:%s administers %s: %s", platform, user, chat, exc)
            return False
        if len(self._known) >= _CACHE_SIZE:
            self._known = {k: v for k, v in self._known.items() if v[1] > now}
            if len(self._known) >= _CACHE_SIZE:
                self._known.clear()
        self._known[(platform, chat, user)] = (answer, now + self.seconds)
        return answer
