"""Telegram adapter settings from the environment, checked at start so a bad value stops Parley."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # what setWebhook accepts as secret_token
_TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")


class GroupScope(StrEnum):
    """Whose history a group message continues."""

    USER = "user"  # each member has their own conversation with the bot in a group
    CHAT = "chat"  # the group (or forum topic) is one conversation shared by everyone


class StreamMode(StrEnum):
    """How a private-chat reply grows while the model writes it (groups always edit)."""

    EDIT = "edit"  # sendMessage, then editMessageText
    DRAFT = "draft"  # sendMessageDraft while streaming, then one sendMessage


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::]:8443`) → (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 0.0.0.0:8443)")
    return host.strip("[]") or "0.0.0.0", int(port)


class TelegramSettings(BaseSettings):
    """Everything `parley telegram` needs beside the core settings."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    telegram_bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_url: str | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_webhook_listen: str = "0.0.0.0:8443"
    telegram_group_scope: GroupScope = GroupScope.USER
    telegram_stream_mode: StreamMode = StreamMode.EDIT
    # Flood limits: ~1 message per second per chat, 20 per minute in a group, ~30 per second
    # for the whole bot. Sends and edits share them. Raise only if Telegram granted more.
    telegram_chat_interval: float = Field(1.0, gt=0)
    telegram_group_messages_per_minute: float = Field(20.0, gt=0)
    telegram_bot_messages_per_second: float = Field(30.0, ge=0)  # 0 = no bot-wide budget
    telegram_request_timeout: float = Field(10.0, gt=0)
    telegram_poll_timeout: float = Field(30.0, ge=0)

    @field_validator("telegram_webhook_url", "telegram_webhook_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable in `.env` means 'not set'."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        """BotFather tokens look like `123456:ABC-def`; catch paste errors at start."""
        if not _TOKEN.fullmatch(value.get_secret_value().strip()):
            raise ValueError("is not a bot token from @BotFather (digits:letters)")
        return SecretStr(value.get_secret_value().strip())

    @field_validator("telegram_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        """`{url}/bot{token}/{method}` is built from it, so no trailing slash."""
        value = value.strip().rstrip("/")
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL, e.g. https://api.telegram.org")
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        """Telegram only calls HTTPS webhooks; plain http is allowed for local test servers."""
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be the public https:// URL Telegram will call")
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        """setWebhook accepts 1-256 characters of A-Z, a-z, 0-9, _ and -."""
        if value is not None and not _SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("telegram_webhook_listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        """Fail at start, not at bind time."""
        parse_listen(value)
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Self:
        """Without the secret anyone who finds the URL could post fake updates."""
        if self.telegram_webhook_url and self.telegram_webhook_secret is None:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET is required when TELEGRAM_WEBHOOK_URL is set")
        return self

    @property
    def webhook_path(self) -> str:
        """The path the listener serves: the path of the public webhook URL."""
        path = urlsplit(self.telegram_webhook_url or "").path
        return path if path.startswith("/") else "/" + path

    @property
    def listen(self) -> tuple[str, int]:
        """Where the webhook listener binds."""
        return parse_listen(self.telegram_webhook_listen)
