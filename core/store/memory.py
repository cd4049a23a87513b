"""An in-process store with the same contract, for unit tests and throwaway sessions."""

from __future__ import annotations

import fnmatch
import secrets
from collections import Counter

from core.clock import Clock, LoopClock
from core.conversation import ConversationKey, StoredMessage, StoreStats, Turn
from core.errors import LeaseLost
from core.store.keys import KeySpace

_SAVED_MARKS = 10_000  # far more turns than can be retrying their save at once


class InMemoryConversationStore:
    """Dict-backed history honouring the cap and TTL like the Redis store."""

    def __init__(
        self, *, max_messages: int = 200, ttl_seconds: int = 0, clock: Clock | None = None
    ) -> None:
        self._keys = KeySpace()
        self._cap = max(2, max_messages - max_messages % 2)
        self._ttl = ttl_seconds
        self._clock = clock or LoopClock()
        self._data: dict[str, tuple[list[StoredMessage], float]] = {}
        self._saved: dict[str, None] = {}  # the newest turn ids, as Redis's saved-marks
        self._fences: dict[ConversationKey, str] = {}  # the newest grant, as the fence key

    def _live(self, name: str) -> list[StoredMessage] | None:
        """The list under ``name`` unless it has expired."""
        entry = self._data.get(name)
        if entry is None:
            return None
        messages, expires = entry
        if expires and self._clock.now() >= expires:
            del self._data[name]
            return None
        return messages

    def _put(self, name: str, messages: list[StoredMessage]) -> None:
        """Store with the cap applied and the TTL renewed."""
        expires = self._clock.now() + self._ttl if self._ttl else 0.0
        self._data[name] = (messages[-self._cap :], expires)

    async def load(self, key: ConversationKey) -> list[StoredMessage]:
        """A copy of the history."""
        return list(self._live(self._keys.history(key)) or [])

    def grant(self, key: ConversationKey) -> str:
        """A new lease grant's fencing token, outdating every earlier one (the turn coordinator
        does this in Redis; here tests stand in for it)."""
        previous = self._fences.get(key, "0:")
        fence = f"{int(previous.split(':', 1)[0]) + 1}:{secrets.token_hex(8)}"
        self._fences[key] = fence
        return fence

    async def append(self, key: ConversationKey, turn: Turn, *, fence: str | None = None) -> None:
        """Both halves at once, once per turn, only under the newest grant."""
        name = self._keys.history(key)
        if self._first_save(key, turn, fence):
            self._put(name, [*(self._live(name) or []), *turn.messages()])

    async def replace_last(
        self, key: ConversationKey, turn: Turn, *, fence: str | None = None
    ) -> None:
        """Swap the newest turn, once per turn, only under the newest grant."""
        name = self._keys.history(key)
        if self._first_save(key, turn, fence):
            self._put(name, [*(self._live(name) or [])[:-2], *turn.messages()])

    def _first_save(self, key: ConversationKey, turn: Turn, fence: str | None) -> bool:
        """Whether this turn was not stored before (marks it stored); LeaseLost when fenced out.

        The same order as the Redis script: a turn already stored stays stored (a retry after
        a lost reply), then the fence.
        """
        mark = self._keys.saved(key, turn.id)
        if mark in self._saved:
            return False
        if fence is not None and fence != self._fences.get(key):
            raise LeaseLost(f"the turn lease of {key} passed to another turn; not saved")
        self._saved[mark] = None
        if len(self._saved) > _SAVED_MARKS:
            del self._saved[next(iter(self._saved))]
        return True

    async def clear(self, key: ConversationKey) -> bool:
        """Forget one conversation."""
        name = self._keys.history(key)
        return self._data.pop(name, None) is not None and True

    async def clear_user(self, platform: str, user: str) -> int:
        """Forget a user's conversations."""
        return self._clear(self._keys.history_pattern(platform=platform, user=user))

    async def clear_chat(self, platform: str, chat: str) -> int:
        """Forget a chat's conversations."""
        return self._clear(self._keys.history_pattern(platform=platform, chat=chat))

    async def clear_all(self) -> int:
        """Forget everything."""
        return self._clear(self._keys.history_pattern())

    async def stats(self) -> StoreStats:
        """Counts like the Redis store's."""
        conversations: Counter[str] = Counter()
        messages = 0
        for name in list(self._data):
            live = self._live(name)
            if live:
                conversations[self._keys.platform_of(name)] += 1
                messages += len(live)
        return StoreStats(
            conversations=sum(conversations.values()),
            messages=messages,
            by_platform=dict(conversations),
        )

    def _clear(self, pattern: str) -> int:
        """Delete names matching a Redis-style glob (ids are escaped, so fnmatch agrees)."""
        names = [n for n in self._data if fnmatch.fnmatchcase(n, pattern) and self._live(n)]
        for name in names:
            self._data.pop(name, None)
        return len(names)
