"""Each Slack user's locale ("zh-CN"), from ``users.info`` with ``include_locale``, cached.

Slack's events and commands do not carry the sender's language; asking for every message would
cost a Web API call each, so the answer is kept per process for a while. A failure or a slow
answer is not worth holding a reply for: the person gets the default language this time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.errors import SLACK_FAILURES, translate

log = logging.getLogger(__name__)

KEEP_SECONDS = 3600.0  # a person rarely changes their Slack language
RETRY_SECONDS = 60.0  # after a failure, ask again at most once a minute
WAIT_SECONDS = 1.0  # slash commands must be answered within 3 s
_MAX_ENTRIES = 10_000


class SlackLocales:
    """``users.info`` locales by user id, cached for ``KEEP_SECONDS``."""

    def __init__(
        self, client: AsyncWebClient, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._now = now
        self._cache: dict[str, tuple[str, float]] = {}

    async def locale(self, user: str) -> str:
        """The user's locale ("zh-CN", "en-US"), or '' when Slack cannot say right now."""
        now = self._now()
        cached = self._cache.get(user)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            locale = await asyncio.wait_for(self._ask(user), WAIT_SECONDS)
            keep = KEEP_SECONDS
        except SLACK_FAILURES as exc:  # TimeoutError included
            log.info("no locale for %s: %s", user, translate(exc, "users.info"))
            locale, keep = (cached[0] if cached else ""), RETRY_SECONDS
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache = {u: e for u, e in self._cache.items() if e[1] > now}
        self._cache[user] = (locale, now + keep)
        return locale

    async def _ask(self, user: str) -> str:
        """One users.info call."""
        response = await self._client.users_info(user=user, include_locale=True)
        profile = response.get("user")
        locale = profile.get("locale") if isinstance(profile, dict) else None
        return locale if isinstance(locale, str) else ""
