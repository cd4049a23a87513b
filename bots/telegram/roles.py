"""Telegram's answer to "does this person administer this group?" (getChatMember)."""

from __future__ import annotations

from telegram import Bot, ChatMember
from telegram.error import TelegramError

from bots.telegram.errors import translate

_ADMIN_STATUSES = frozenset({ChatMember.ADMINISTRATOR, ChatMember.OWNER})


class TelegramChatRoles:
    """Asks the Bot API; the core caches the answer (``core.chat_admins``)."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def is_chat_admin(self, chat: str, user: str) -> bool:
        """The member's status is administrator or creator; a failure is a PlatformError."""
        try:
            member = await self._bot.get_chat_member(int(chat), int(user))
        except ValueError:  # not a Telegram id: no one administers it
            return False
        except TelegramError as exc:
            raise translate(exc) from exc
        return member.status in _ADMIN_STATUSES
