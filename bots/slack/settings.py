"""Slack adapter settings from the environment, checked at start so a bad value stops Parley."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ThreadScope(StrEnum):
    """Whose history a Slack thread continues."""

    USER = "user"  # each user has their own conversation in a thread
    THREAD = "thread"  # the thread is one conversation shared by everyone in it


class StreamMode(StrEnum):
    """How a reply grows while the model writes it."""

    UPDATE = "update"  # chat.postMessage, then chat.update
    NATIVE = "native"  # chat.startStream / appendStream / stopStream, chat.update as fallback


MAX_PROMPTS = 4  # Slack shows at most four suggested prompts


@dataclass(frozen=True, slots=True)
class SuggestedPrompt:
    """One prompt offered in the assistant pane: its button title and the message it sends."""

    title: str
    message: str


def parse_prompts(value: str) -> tuple[SuggestedPrompt, ...]:
    """`title=message|plain prompt|…` → prompts; a plain prompt is its own title."""
    prompts = []
    for item in value.split("|"):
        title, sep, message = item.partition("=")
        title, message = title.strip(), message.strip()
        if not sep:
            message = title
        if not title or not message:
            if item.strip():
                raise ValueError(f"{item!r} is not a prompt (write title=message or a prompt)")
            continue
        prompts.append(SuggestedPrompt(title, message))
    if len(prompts) > MAX_PROMPTS:
        raise ValueError(f"Slack shows at most {MAX_PROMPTS} suggested prompts")
    return tuple(prompts)


def parse_listen(value: str) -> tuple[str, int]:
    """`host:port` (IPv6 as `[::]:3000`) → (host, port)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port (e.g. 0.0.0.0:3000)")
    return host.strip("[]") or "0.0.0.0", int(port)


class SlackSettings(BaseSettings):
    """Everything `parley slack` needs beside the core settings."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr
    slack_app_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_http_listen: str = "0.0.0.0:3000"
    slack_api_url: str = "https://slack.com/api/"
    slack_thread_scope: ThreadScope = ThreadScope.USER
    slack_stream_mode: StreamMode = StreamMode.UPDATE
    # Budgets. chat.update is Tier 3 (~50/min) per workspace; posts ~1/s per channel;
    # chat.appendStream is Tier 4 (~100/min). Lower them if Slack still answers 429.
    slack_updates_per_minute: float = Field(50.0, gt=0)
    slack_stream_appends_per_minute: float = Field(100.0, gt=0)
    slack_channel_interval: float = Field(1.0, ge=0)
    # One message holds at most this many characters of the answer; more continues below.
    # Escaping (& → &amp;) can grow a text 5×, and Slack truncates past 40,000 characters.
    slack_message_chars: int = Field(3900, ge=200, le=8000)
    slack_api_timeout: float = Field(10.0, gt=0)
    # The assistant pane's suggested prompts ("" : Parley's own, in each person's language).
    slack_assistant_prompts: str = ""

    @field_validator("slack_app_token", "slack_signing_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable in `.env` means 'not set'."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("slack_assistant_prompts")
    @classmethod
    def _valid_prompts(cls, value: str) -> str:
        """Fail at start, not when someone opens the assistant pane."""
        parse_prompts(value)
        return value

    @field_validator("slack_http_listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        """Fail at start, not at bind time."""
        parse_listen(value)
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        """slack_sdk joins method names onto the base URL, so it must end with '/'."""
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _mode_has_its_secret(self) -> Self:
        """HTTP mode cannot check request signatures without the signing secret."""
        if self.slack_app_token is None and self.slack_signing_secret is None:
            raise ValueError(
                "SLACK_SIGNING_SECRET is required in HTTP mode "
                "(or set SLACK_APP_TOKEN for Socket Mode)"
            )
        return self

    @property
    def socket_mode(self) -> bool:
        """Socket Mode whenever an app-level token is configured."""
        return self.slack_app_token is not None

    @property
    def assistant_prompts(self) -> tuple[SuggestedPrompt, ...]:
        """The configured suggested prompts (none: Parley's own)."""
        return parse_prompts(self.slack_assistant_prompts)

    @property
    def listen(self) -> tuple[str, int]:
        """Where HTTP mode binds."""
        return parse_listen(self.slack_http_listen)
