"""What the bot's commands say, the menu registered with setMyCommands, and confirmation data."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import BotCommand

from core.conversation import StoreStats

PUBLIC_MENU = (
    BotCommand("start", "What this bot is and how to use it"),
    BotCommand("help", "Commands"),
    BotCommand("reset", "Forget our conversation here"),
    BotCommand("stop", "Stop the answer being written"),
    BotCommand("retry", "Answer my last message again"),
    BotCommand("forget", "Delete everything I remember about you here"),
)
ADMIN_MENU = (
    *PUBLIC_MENU,
    BotCommand("reset_user", "Admin: forget a user's conversations (/reset_user <id>)"),
    BotCommand("reset_chat", "Admin: forget every conversation in this chat"),
    BotCommand("reset_all", "Admin: forget everything (asks first)"),
    BotCommand("stats", "Admin: what the bot remembers"),
)

TEXT_ONLY = "I can read text only. Please send your question as a text message."
FORGOTTEN = "Deleted {count} conversation(s): I no longer remember anything you told me here."
UNKNOWN = "I don't know /{command}. Send /help to see what I can do."
RESET_USER_USAGE = "Usage: /reset_user <numeric Telegram user id>"
CONFIRM_RESET_ALL = (
    "⚠️ Delete *every* conversation the bot remembers, on all platforms? This cannot be undone."
)
CONFIRM_TTL_SECONDS = 120


def start_text(name: str, username: str) -> str:
    """/start: what the bot is and how to talk to it."""
    return (
        f"👋 Hi, I'm **{name}**, an assistant powered by a reasoning model.\n\n"
        "Write me a message and I'll answer; I remember our conversation until you /reset it. "
        "While I think you'll see 💭, and you can /stop me at any time.\n\n"
        f"In groups, mention me (@{username}) or reply to one of my messages.\n\n"
        "Send /help for the commands."
    )


def help_text(*, admin: bool) -> str:
    """/help: the commands this user may use."""
    lines = ["**Commands**", ""]
    lines += [f"/{c.command} — {c.description}" for c in PUBLIC_MENU]
    if admin:
        lines += ["", "**Admin**", ""]
        lines += [f"/{c.command} — {c.description[7:]}" for c in ADMIN_MENU[len(PUBLIC_MENU) :]]
    return "\n".join(lines)


def stats_text(stats: StoreStats) -> str:
    """/stats in a few lines."""
    platforms = ", ".join(f"{name}: {count}" for name, count in sorted(stats.by_platform.items()))
    return (
        "**Memory**\n\n"
        f"Conversations: {stats.conversations}\n"
        f"Messages: {stats.messages}\n"
        f"Tokens: {stats.tokens}\n"
        f"By platform: {platforms or '—'}"
    )


@dataclass(frozen=True, slots=True)
class Confirmation:
    """An inline-button answer to a dangerous admin command."""

    action: str  # "reset_all"
    yes: bool
    user_id: str  # only the admin who asked may answer
    issued_at: int

    def data(self) -> str:
        """Callback data (Telegram allows 64 bytes)."""
        return f"{self.action}|{'y' if self.yes else 'n'}|{self.user_id}|{self.issued_at}"

    @classmethod
    def parse(cls, data: str) -> Confirmation | None:
        """The confirmation in ``data``, or None if it is something else."""
        parts = data.split("|")
        if len(parts) != 4 or parts[1] not in ("y", "n") or not parts[3].isdigit():
            return None
        return cls(parts[0], parts[1] == "y", parts[2], int(parts[3]))

    def expired(self, now: float) -> bool:
        """Buttons older than a couple of minutes no longer act."""
        return now - self.issued_at > CONFIRM_TTL_SECONDS
