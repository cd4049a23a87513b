"""Slack's answer to "may this person change a channel's settings?" (users.info).

Slack has no per-channel admins the bot can ask for every channel kind, so a channel's
settings are changed by the workspace's admins and owners (``users.info``: ``is_admin``,
``is_owner``, ``is_primary_owner``; the ``users:read`` scope) besides the bot's own admins.
"""

from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.errors import SLACK_FAILURES, translate

_ROLES = ("is_admin", "is_owner", "is_primary_owner")


class SlackChatRoles:
    """Asks the Web API; the core caches the answer (``core.chat_admins``)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def is_chat_admin(self, chat: str, user: str) -> bool:
        """A workspace admin or owner; a failure (e.g. missing_scope) is a PlatformError."""
        del chat  # the same answer in every channel of the workspace
        try:
            response = await self._client.users_info(user=user)
        except SLACK_FAILURES as exc:
            raise translate(exc, "users.info") from exc
        profile = response.get("user")
        return isinstance(profile, dict) and any(profile.get(role) is True for role in _ROLES)
