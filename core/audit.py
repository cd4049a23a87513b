"""Who did what, when: every admin action from a chat or the CLI, kept in a Redis stream."""

from __future__ import annotations

from dataclasses import dataclass

from core.clock import wall_time
from core.store.client import RedisClient
from core.store.keys import KeySpace
from core.store.redis_store import guarded


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One admin action."""

    at: float
    actor: str  # platform:user_id, or cli:<login>
    action: str
    target: str
    detail: str


def _text(value: object) -> str:
    """A Redis reply field as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class AuditLog:
    """Append-only, capped (XADD MAXLEN ~), shared by every replica and the CLI."""

    def __init__(
        self, redis: RedisClient, keys: KeySpace | None = None, max_entries: int = 10_000
    ) -> None:
        self._redis = redis
        self._key = (keys or KeySpace()).named("audit")
        self._max = max_entries

    async def record(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        """Write one entry."""
        fields = {"at": f"{wall_time():.3f}", "actor": actor, "action": action,
                  "target": target, "detail": detail}  # fmt: skip
        await guarded(
            "audit",
            lambda: self._redis.xadd(self._key, fields, maxlen=self._max, approximate=True),  # type: ignore[arg-type]
        )

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        """The newest entries, newest first."""
        rows = await guarded("audit", lambda: self._redis.xrevrange(self._key, count=limit))
        entries = []
        for _, raw in rows or ():
            fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
            entries.append(
                AuditEntry(
                    at=float(fields.get("at", 0)),
                    actor=fields.get("actor", ""),
                    action=fields.get("action", ""),
                    target=fields.get("target", ""),
                    detail=fields.get("detail", ""),
                )
            )
        return entries
