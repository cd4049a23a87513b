"""The composition root's workhorse: builds Redis, the model client and the chat service once."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool, UnixDomainSocketConnection
from redis.asyncio.sentinel import MasterNotFoundError

from bots.cluster import cluster_client
from bots.embedded_redis import Which, embedded_redis
from bots.sentinel import sentinel_client
from core.access import AccessControl
from core.admins import Admins
from core.admission import Admission
from core.answer import Answerer
from core.answers import AnswerBook
from core.audit import AuditLog
from core.briefing import Briefing
from core.chat_admins import ChatAdmins
from core.chat_commands import ChatCommands
from core.clock import Clock, LoopClock
from core.confirmations import PendingActions
from core.control import Commands
from core.controls import AnswerControls
from core.errors import ConfigError
from core.i18n import LANGUAGES, match_language
from core.intake import Intake
from core.languages import Languages
from core.lifecycle import Lifecycle
from core.llm.client import LLMClient, OpenAICompatibleClient, Timeouts
from core.llm.servers import ServerPool
from core.marks import OnceMarks
from core.metrics import Metrics
from core.operations import Operations
from core.persona_file import load_personas
from core.phrases import Phrases
from core.quotas import Quotas
from core.retry import BLIP, RetryPolicy, redis_command_retry
from core.service import ChatService
from core.settings import CoreSettings
from core.store.chat_settings import RedisChatSettings
from core.store.client import REDIS_FAILURES, RedisClient
from core.store.keys import KeySpace
from core.store.languages import RedisLanguageChoices
from core.store.redis_store import RedisConversationStore
from core.store.upgrades import upgrade_keys
from core.tokens import default_counter
from core.turn_runner import TurnRunner
from core.turns import TurnCoordinator
from core.usage import UsageStats

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything an adapter needs, built once from settings."""

    settings: CoreSettings
    service: ChatService
    redis: RedisClient
    llm: ServerPool
    keys: KeySpace
    clock: Clock
    redis_description: str


def redact_url(url: str) -> str:
    """A URL safe to print: the password (and user) replaced."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))


def redis_options(settings: CoreSettings) -> dict[str, object]:
    """Deliberate timeouts and short retries: a frozen Redis must not stall a turn for a minute."""
    return {
        "socket_timeout": settings.redis_timeout,
        "socket_connect_timeout": settings.redis_timeout,
        "retry": redis_command_retry(),
        "health_check_interval": 30,
    }


# Every streaming reply holds a connection only for a command at a time; a blocking pool makes a
# burst wait briefly for a free connection instead of failing with "Too many connections".
_MAX_CONNECTIONS = 512


def _pool(settings: CoreSettings, url: str | None, socket: str | None) -> BlockingConnectionPool:
    """A bounded pool that waits (up to the Redis timeout) rather than raising when busy."""
    options = redis_options(settings)
    wait = max(settings.redis_timeout, 5.0)
    if url is not None:
        return BlockingConnectionPool.from_url(
            url, max_connections=_MAX_CONNECTIONS, timeout=wait, **options
        )
    return BlockingConnectionPool(
        connection_class=UnixDomainSocketConnection,
        path=socket,
        max_connections=_MAX_CONNECTIONS,
        timeout=wait,
        **options,  # type: ignore[arg-type]
    )


_NO_REDIS = (
    "no Redis: set REDIS_URL to a shared Redis (or install redis-server for a private one); "
    "the bots cannot run on in-process memory"
)


@contextlib.asynccontextmanager
async def open_redis(
    settings: CoreSettings, *, allow_memory: bool = False, which: Which = shutil.which
) -> AsyncIterator[tuple[RedisClient, str]]:
    """REDIS_URL, REDIS_SENTINELS, or a private persistent redis-server.

    With none of them (no redis-server on PATH, as ``which`` finds it) only ``allow_memory``
    callers (`parley chat`, tests) get an in-process fake, with a warning; everyone else gets a
    ConfigError, so a bot never silently keeps history in one process's memory.
    """
    async with contextlib.AsyncExitStack() as stack:
        client: RedisClient
        if settings.redis_url is not None and settings.redis_cluster:
            url = settings.redis_url.get_secret_value()
            client = cluster_client(settings, url, redis_options(settings), _MAX_CONNECTIONS)
            description = f"Redis Cluster via {redact_url(url)}"
        elif settings.redis_url is not None:
            url = settings.redis_url.get_secret_value()
            try:
                client = aioredis.Redis.from_pool(_pool(settings, url, None))
            except ValueError as exc:
                raise ConfigError(f"REDIS_URL is not a valid Redis URL: {exc}") from None
            description = redact_url(url)
        elif settings.redis_sentinels:
            sentinel, client = sentinel_client(settings, redis_options(settings), _MAX_CONNECTIONS)
            stack.push_async_callback(sentinel.aclose)
            where = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
            description = f"master {settings.redis_sentinel_master!r} of sentinels {where}"
        else:
            data_dir = Path(settings.data_dir)
            socket = await stack.enter_async_context(embedded_redis(data_dir, which=which))
            if socket is not None:
                client = aioredis.Redis.from_pool(_pool(settings, None, socket))
                description = f"embedded redis-server ({socket})"
            elif not allow_memory:
                raise ConfigError(_NO_REDIS)
            else:
                import fakeredis

                log.warning(
                    "REDIS_URL is unset and no redis-server is installed: history is kept in "
                    "memory only and is lost when Parley stops"
                )
                client = fakeredis.FakeAsyncRedis()
                description = "in-process memory (not persistent)"
        stack.push_async_callback(client.aclose)
        try:
            await client.ping()
        except MasterNotFoundError:  # its own text holds every sentinel client's repr
            where = ",".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
            raise ConfigError(
                f"cannot reach Redis: none of the sentinels {where} names a master "
                f"{settings.redis_sentinel_master!r}; check REDIS_SENTINELS, "
                "REDIS_SENTINEL_MASTER and REDIS_SENTINEL_PASSWORD"
            ) from None
        except REDIS_FAILURES as exc:
            where = "REDIS_SENTINELS: the " if settings.redis_sentinels else "REDIS_URL: "
            raise ConfigError(f"cannot reach Redis at {where}{description}: {exc}") from None
        yield client, description


def build_service(
    settings: CoreSettings,
    redis: RedisClient,
    llm: LLMClient,
    keys: KeySpace,
    clock: Clock,
    phrases: Phrases | None,
    metrics: Metrics | None,
    retry: RetryPolicy,
) -> ChatService:
    """Wire the core once: one admission, one turn runner, one command router."""
    phrases = phrases or Phrases()
    metrics = metrics or Metrics()
    personas = load_personas(settings.personas_file, settings.default_persona)
    admins = Admins(settings.admin_ids)
    chat_settings = RedisChatSettings(redis, keys)
    default_language = match_language(settings.default_language)
    if default_language is None:
        choices = ", ".join(LANGUAGES)
        raise ConfigError(f"DEFAULT_LANGUAGE={settings.default_language!r}: use one of {choices}")
    languages = Languages(RedisLanguageChoices(redis, keys), default_language)
    store = RedisConversationStore(
        redis, keys=keys, max_messages=settings.history_max_messages,
        ttl_seconds=settings.history_ttl_seconds,
    )  # fmt: skip
    settling = retry.settling()  # ending a turn (save, running mark) outlasts a failover
    turns = TurnCoordinator(
        redis, keys=keys, lease_seconds=settings.lock_lease_seconds, retry=settling
    )
    access = AccessControl(redis, mode=settings.access, admins=admins, keys=keys)
    quotas = Quotas(
        redis,
        messages_per_minute=settings.quota_messages_per_minute,
        tokens_per_day=settings.quota_tokens_per_day,
        keys=keys,
    )
    usage = UsageStats(redis, keys)
    marks = OnceMarks(redis, keys)
    lifecycle = Lifecycle(turns)
    answers = AnswerBook(redis, keys, ttl_seconds=settings.history_ttl_seconds)
    answerer = Answerer(
        settings=settings, store=store, llm=llm, counter=default_counter(), clock=clock,
        phrases=phrases, metrics=metrics, retry=settling, answers=answers,
    )  # fmt: skip
    runner = TurnRunner(
        answerer=answerer,
        store=store,
        turns=turns,
        admission=Admission(
            admins=admins, phrases=phrases, marks=marks, access=access, quotas=quotas
        ),
        lifecycle=lifecycle,
        busy_policy=settings.busy_policy,
        intake=Intake(settings.max_queued_per_conversation),
        phrases=phrases,
        quotas=quotas,
        usage=usage,
        metrics=metrics,
        retry=retry,
        briefing=Briefing(settings, personas, chat_settings),
        languages=languages,
        answers=answers,
    )
    operations = Operations(
        store=store, access=access, audit_log=AuditLog(redis, keys), usage=usage, quotas=quotas,
        chat_settings=chat_settings, personas=personas,
    )  # fmt: skip
    commands = Commands(
        store=store,
        turns=turns,
        operations=operations,
        admins=admins,
        pending=PendingActions(redis, keys, settings.confirm_seconds),
        quotas=quotas,
        marks=marks,
        chat=ChatCommands(chat_settings, personas, admins, ChatAdmins(clock)),
        languages=languages,
        controls=AnswerControls(answers, turns, admins),
    )
    return ChatService(settings, runner, commands, lifecycle)


@contextlib.asynccontextmanager
async def open_runtime(
    settings: CoreSettings,
    *,
    phrases: Phrases | None = None,
    clock: Clock | None = None,
    metrics: Metrics | None = None,
    retry: RetryPolicy = BLIP,
    allow_memory: bool = False,
) -> AsyncIterator[Runtime]:
    """Build the runtime; close every connection on exit.

    ``allow_memory``: without any Redis, run on in-process memory (`parley chat`) instead of
    refusing to start (the bots: see ``open_redis``).
    """
    clock = clock or LoopClock()
    keys = KeySpace()
    async with open_redis(settings, allow_memory=allow_memory) as (redis, description):
        await upgrade_keys(redis, keys)
        timeouts = Timeouts(
            connect=settings.llm_connect_timeout,
            first_token=settings.llm_first_token_timeout,
            idle=settings.llm_idle_timeout,
        )
        llm = ServerPool(  # one server or several: LLM_BASE_URL is a comma-separated list
            [
                OpenAICompatibleClient(
                    url,
                    settings.llm_api_key.get_secret_value(),
                    model=settings.llm_model,
                    timeouts=timeouts,
                    retry=retry.at_most(settings.llm_retries),
                )
                for url in settings.llm_base_urls
            ],
            cooldown=settings.llm_server_cooldown_seconds,
            clock=clock,
        )
        try:
            service = build_service(settings, redis, llm, keys, clock, phrases, metrics, retry)
            yield Runtime(settings, service, redis, llm, keys, clock, description)
        finally:
            await llm.close()
