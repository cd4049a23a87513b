"""Destructive admin commands wait for a yes from the admin who asked, for two minutes at most."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from core.commands import CommandName
from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded

CONFIRM_SECONDS = 120


@dataclass(frozen=True, slots=True)
class Pending:
    """A command asked for and not yet answered."""

    action: CommandName
    asker: str  # platform:user_id
    args: tuple[str, ...] = ()


def _text(value: object) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class PendingActions:
    """Questions in Redis (any replica or the CLI may see the answer); they expire by TTL."""

    def __init__(
        self, redis: RedisClient, keys: KeySpace, ttl_seconds: int = CONFIRM_SECONDS
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds

    def _key(self, ident: str) -> str:
        """Where one question lives."""
        return self._keys.named("confirm", ident)

    async def ask(self, pending: Pending) -> str:
        """Store the question; its id goes into the buttons (short: Telegram allows 64 bytes)."""
        ident = secrets.token_urlsafe(12)
        value = json.dumps(
            {"action": pending.action.value, "asker": pending.asker, "args": list(pending.args)}
        )
        key = self._key(ident)
        await guarded("confirmation", lambda: self._redis.set(key, value, ex=self._ttl))
        return ident

    async def peek(self, ident: str) -> Pending | None:
        """The open question with this id, or None if it expired or was answered."""
        raw = await guarded("confirmation", lambda: self._redis.get(self._key(ident)))
        if raw is None:
            return None
        try:
            fields = json.loads(_text(raw))
            action = CommandName(fields["action"])
            return Pending(action, str(fields["asker"]), tuple(map(str, fields["args"])))
        except (ValueError, KeyError, TypeError):
            return None

    async def take(self, ident: str) -> bool:
        """Close the question; True only for the one answer that closed it."""
        return bool(await guarded("confirmation", lambda: self._redis.delete(self._key(ident))))
