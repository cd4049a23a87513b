"""Each update_id is handled once, even when Telegram redelivers it or two replicas both get it."""

from __future__ import annotations

from core.marks import OnceMarks

TTL_SECONDS = 24 * 3600  # Telegram keeps undelivered updates for 24 hours


class UpdateDeduplicator:
    """Whoever marks an update id first handles the update; without Redis, every replica does."""

    def __init__(self, marks: OnceMarks, *, bot_id: int | str) -> None:
        self._marks = marks
        self._bot_id = str(bot_id)

    async def claim(self, update_id: int) -> bool:
        """True the first time ``update_id`` is seen (answering twice beats not answering)."""
        return await self._marks.first(
            "telegram", "update", self._bot_id, str(update_id), ttl=TTL_SECONDS
        )
