"""Each event and message is handled once, across Slack's retries and across replicas."""

from __future__ import annotations

from core.marks import OnceMarks

TTL_SECONDS = 3600  # Slack retries an event for a few minutes; an hour leaves a wide margin


class EventDeduplicator:
    """Whoever marks an event (or message) first handles it; without Redis, every replica does."""

    def __init__(self, marks: OnceMarks) -> None:
        self._marks = marks

    async def first_delivery(self, event_id: str) -> bool:
        """True once per event_id; Slack's retries of it then find it taken."""
        return await self._marks.first("slack", "event", event_id, ttl=TTL_SECONDS)

    async def claim_message(self, channel: str, ts: str) -> bool:
        """True once per message: a mention arrives both as app_mention and as message."""
        return await self._marks.first("slack", "msg", channel, ts, ttl=TTL_SECONDS)
