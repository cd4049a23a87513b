"""Core settings from the environment and `.env`; invalid values stop Parley at start."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.access import AccessMode
from core.errors import ConfigError


class ShowReasoning(StrEnum):
    """How much of the model's reasoning users see."""

    OFF = "off"
    PROGRESS = "progress"
    COLLAPSED = "collapsed"
    FULL = "full"


class BusyPolicy(StrEnum):
    """What happens when a message arrives while the conversation is still being answered."""

    QUEUE = "queue"
    INTERRUPT = "interrupt"
    REJECT = "reject"


class CoreSettings(BaseSettings):
    """Everything the core needs; adapters add their own settings classes beside it."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    llm_base_url: str = "http://localhost:8000/v1"
    llm_api_key: SecretStr = SecretStr("EMPTY")
    llm_model: str = ""
    llm_temperature: float = Field(0.6, ge=0.0, le=2.0)
    llm_top_p: float = Field(0.95, gt=0.0, le=1.0)
    llm_max_tokens: int = Field(4096, ge=16)
    llm_context_tokens: int | None = Field(None, ge=256)
    llm_instructions: str = ""
    personas_file: str = "personas.yaml"  # core.persona_file.DEFAULT_FILE
    default_persona: str = ""  # '' = the first persona in PERSONAS_FILE
    default_language: str = "en"  # for people whose platform names no language Parley speaks
    llm_connect_timeout: float = Field(5.0, gt=0)
    llm_first_token_timeout: float = Field(120.0, gt=0)
    llm_idle_timeout: float = Field(60.0, gt=0)
    llm_retries: int = Field(1, ge=0, le=5)
    llm_server_cooldown_seconds: float = Field(15.0, ge=0, le=3600)

    show_reasoning: ShowReasoning = ShowReasoning.PROGRESS
    busy_policy: BusyPolicy = BusyPolicy.QUEUE
    max_queued_per_conversation: int = Field(3, ge=0, le=100)

    redis_url: SecretStr | None = None
    redis_cluster: bool = False  # REDIS_URL names any node of a Redis Cluster
    # Redis Sentinel instead of REDIS_URL: the sentinels as host:port pairs, the master's name.
    redis_sentinels: Annotated[tuple[tuple[str, int], ...], NoDecode] = ()
    redis_sentinel_master: str = Field("mymaster", min_length=1)
    redis_password: SecretStr | None = None  # the master's and replicas' (Sentinel only)
    redis_sentinel_password: SecretStr | None = None  # the sentinels' own, if they require one
    redis_timeout: float = Field(2.0, gt=0)
    data_dir: str = "var"
    history_ttl_seconds: int = Field(30 * 24 * 3600, ge=0)
    history_max_messages: int = Field(200, ge=2)
    lock_lease_seconds: float = Field(30.0, ge=1.0)

    admin_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    access: AccessMode = AccessMode.OPEN
    quota_messages_per_minute: int = Field(12, ge=0)
    quota_tokens_per_day: int = Field(0, ge=0)
    confirm_seconds: int = Field(120, ge=1, le=3600)
    metrics_listen: str = ""
    shutdown_grace_seconds: float = Field(20.0, ge=0)

    @field_validator("llm_context_tokens", "redis_url", "metrics_listen", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object, info: ValidationInfo) -> object:
        """An empty variable in `.env` means 'use the default', not an invalid value."""
        if isinstance(value, str) and not value.strip():
            return "" if info.field_name == "metrics_listen" else None
        return value

    @field_validator("llm_base_url", mode="before")
    @classmethod
    def _parse_base_urls(cls, value: object) -> object:
        """One http(s) URL or several, comma-separated (core.llm.servers spreads over them)."""
        if not isinstance(value, str):
            return value
        urls = [part.strip() for part in value.split(",") if part.strip()]
        if not urls:
            return cls.model_fields["llm_base_url"].default  # empty in `.env`: the default
        for url in urls:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises ValueError for a port that is not a number
            except ValueError:
                parts = urlsplit("")
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{url!r} is not an http(s) URL (e.g. http://localhost:8000/v1)")
        if len(set(urls)) < len(urls):
            raise ValueError("a model server is listed twice")
        return ",".join(urls)

    @property
    def llm_base_urls(self) -> tuple[str, ...]:
        """LLM_BASE_URL's model servers, in the order given."""
        return tuple(self.llm_base_url.split(","))

    @field_validator("redis_password", "redis_sentinel_password", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        """An empty password in `.env` means none, not an empty password sent to Redis."""
        return None if isinstance(value, str) and not value else value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _parse_sentinels(cls, value: object) -> object:
        """`host:port,host:port` (IPv6 as `[::1]:26379`) → ((host, port), …)."""
        if not isinstance(value, str):
            return value
        sentinels = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            host, _, port = part.rpartition(":")
            host = host.removeprefix("[").removesuffix("]")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{part!r} is not host:port (e.g. sentinel-1:26379)")
            sentinels.append((host, int(port)))
        if len(set(sentinels)) < len(sentinels):
            raise ValueError("a sentinel is listed twice")
        return tuple(sentinels)

    @model_validator(mode="after")
    def _one_redis(self) -> CoreSettings:
        """REDIS_URL and REDIS_SENTINELS both name where history lives: only one may; a
        Cluster is found from one of its nodes."""
        if self.redis_url is not None and self.redis_sentinels:
            raise ValueError("set REDIS_URL or REDIS_SENTINELS, not both")
        if self.redis_cluster and self.redis_url is None:
            raise ValueError("REDIS_CLUSTER=true needs REDIS_URL naming one of the cluster's nodes")
        return self

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: object) -> object:
        """`telegram:123,slack:U0123` → a set of platform-qualified ids."""
        if isinstance(value, str):
            ids = {part.strip() for part in value.split(",") if part.strip()}
            for admin in ids:
                platform, _, user = admin.partition(":")
                if not platform or not user:
                    raise ValueError(f"{admin!r} is not platform:user_id (e.g. telegram:123)")
            return frozenset(ids)
        return value

    def is_admin(self, platform: str, user_id: str) -> bool:
        """Admin rights come only from ADMIN_IDS matched against a verified sender id."""
        return f"{platform}:{user_id}" in self.admin_ids


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S]) -> S:
    """Build a settings class, turning validation errors into a ConfigError naming the variable."""
    try:
        return cls()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
