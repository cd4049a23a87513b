"""Who may talk to the bot: open, or an allowlist of users, chats and Slack workspaces."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.admins import Admins
from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded

_TOLD_TTL = 24 * 3600  # a refused user hears it once a day at most


class AccessMode(StrEnum):
    """ACCESS setting."""

    OPEN = "open"
    ALLOWLIST = "allowlist"


@dataclass(frozen=True, slots=True)
class Subject:
    """Everything an access rule can name for one message."""

    platform: str
    user: str
    chat: str = ""
    workspace: str = ""

    def entries(self) -> list[str]:
        """The list entries that would match: user, chat, workspace."""
        found = [f"{self.platform}:{self.user}"]
        if self.chat:
            found.append(f"{self.platform}:chat:{self.chat}")
        if self.workspace:
            found.append(f"{self.platform}:team:{self.workspace}")
        return found


def valid_entry(entry: str) -> bool:
    """`platform:user`, `platform:chat:ID` or `slack:team:ID`."""
    parts = entry.split(":")
    if len(parts) == 2:
        return all(parts)
    return len(parts) == 3 and parts[1] in ("chat", "team") and all(parts)


class AccessControl:
    """Allow and deny lists in Redis; deny wins; admins are always allowed."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        mode: AccessMode,
        admins: Admins,
        keys: KeySpace | None = None,
    ) -> None:
        self._redis = redis
        self._mode = mode
        self._admins = admins
        self._keys = keys or KeySpace()

    @property
    def mode(self) -> AccessMode:
        """Open or allowlist."""
        return self._mode

    async def allowed(self, subject: Subject) -> bool:
        """Whether this message may be answered."""
        if self._admins(subject.platform, subject.user):
            return True
        entries = subject.entries()

        async def check() -> bool:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.smismember(self._keys.access_list("deny"), entries)
                pipe.smismember(self._keys.access_list("allow"), entries)
                denied, allowed = await pipe.execute()
            if any(denied):
                return False
            return self._mode is AccessMode.OPEN or any(allowed)

        return await guarded("access", check)

    async def first_refusal(self, subject: Subject) -> bool:
        """True only the first time (per day) a refused user writes: tell them once, politely."""
        key = self._keys.named("refused", subject.platform, subject.user)
        return bool(await guarded("access", lambda: self._redis.set(key, 1, nx=True, ex=_TOLD_TTL)))

    async def forget_refusal(self, platform: str, user: str) -> None:
        """Forget that this person was told they are refused (/forget)."""
        key = self._keys.named("refused", platform, user)
        await guarded("access", lambda: self._redis.unlink(key))

    async def allow(self, entry: str) -> None:
        """Add to the allowlist (and lift a deny)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._keys.access_list("allow"), entry)
            pipe.srem(self._keys.access_list("deny"), entry)
            await guarded("access", pipe.execute)

    async def deny(self, entry: str) -> None:
        """Add to the denylist (and drop from the allowlist)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(self._keys.access_list("deny"), entry)
            pipe.srem(self._keys.access_list("allow"), entry)
            await guarded("access", pipe.execute)

    async def lists(self) -> tuple[list[str], list[str]]:
        """(allowed, denied) entries."""
        allow = await guarded(
            "access", lambda: self._redis.smembers(self._keys.access_list("allow"))
        )
        deny = await guarded("access", lambda: self._redis.smembers(self._keys.access_list("deny")))
        decode = lambda v: v.decode() if isinstance(v, bytes) else str(v)  # noqa: E731
        return sorted(map(decode, allow)), sorted(map(decode, deny))
