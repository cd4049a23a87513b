"""The world the bot runs in during a benchmark: Redis, the model server and the fake platforms.

The fake Bot API always runs; the fake Slack Web API (figure 7) only when asked for.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.services import RedisServer, start_redis
from tools.bench.procs import CpuPlan, Helper, cpu_seconds, pin, spawn


@dataclass
class Env:
    """Running helpers and a client for their /bench controls."""

    redis: RedisServer
    model: Helper
    platform: Helper
    cpus: CpuPlan
    http: httpx.AsyncClient
    slack: Helper | None = None  # the fake Slack Web API, when running_env(slack=True)

    async def configure_model(self, **values: Any) -> None:
        """Set how the model server streams (and reset its stamps)."""
        (await self.http.post(f"{self.model.url}/bench/config", json=values)).raise_for_status()

    async def model_stats(self) -> dict[str, Any]:
        """Tokens sent and per-conversation stamps."""
        response = await self.http.get(f"{self.model.url}/bench/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    async def configure_platform(self, *, rtt: float, rules: str, scale: float = 1.0) -> None:
        """Round trip and flood rules of the fake Bot API."""
        body = {"rtt": rtt, "rules": rules, "scale": scale}
        response = await self.http.post(f"{self.platform.url}/bench/config", json=body)
        response.raise_for_status()

    async def open_chats(self, private: list[int], groups: list[int] | None = None) -> None:
        """Forget earlier chats and writes; create these."""
        body = {"private": private, "groups": groups or []}
        response = await self.http.post(f"{self.platform.url}/bench/chats", json=body)
        response.raise_for_status()

    async def platform_stats(self) -> dict[str, Any]:
        """Writes, 429s, lags and stamps since the last open_chats."""
        response = await self.http.get(f"{self.platform.url}/bench/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def slack_url(self) -> str:
        """The fake Slack's Web API base URL (ends with /api/)."""
        if self.slack is None:
            raise RuntimeError("the fake Slack is not running: use running_env(..., slack=True)")
        return self.slack.url

    async def configure_slack(self, *, rtt: float) -> None:
        """Round trip of the fake Slack; forgets earlier messages, calls and writes."""
        response = await self.http.post(f"{self.slack_url()}bench.config", json={"rtt": rtt})
        response.raise_for_status()

    async def slack_stats(self) -> dict[str, Any]:
        """Writes, 429s, lags and calls per method since the last configure_slack."""
        response = await self.http.get(f"{self.slack_url()}bench.stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def helper_cpu(self) -> float:
        """CPU seconds used so far by everything that is not the bot."""
        return (
            self.model.cpu_seconds()
            + self.platform.cpu_seconds()
            + (self.slack.cpu_seconds() if self.slack is not None else 0.0)
            + cpu_seconds(self.redis.process.pid)
        )


def redis_available() -> bool:
    """The benchmarks use a real redis-server, as production does."""
    return shutil.which("redis-server") is not None


@contextlib.asynccontextmanager
async def running_env(cpus: CpuPlan, *, slack: bool = False) -> AsyncIterator[Env]:
    """Start Redis, the model server and the fake Bot API (and the fake Slack if ``slack``) on
    the helper CPUs; stop them on exit."""
    if not redis_available():
        raise RuntimeError("redis-server is not installed (make redis)")
    redis = start_redis()
    pin(redis.process.pid, cpus.helpers)
    helpers: list[Helper] = []
    try:
        helpers.append(spawn("model", "tools.bench.model_server", cpus.helpers))
        helpers.append(spawn("platform", "tools.bench.platform_server", cpus.helpers))
        if slack:
            helpers.append(spawn("slack", "tools.bench.slack_server", cpus.helpers))
        limits = httpx.Limits(max_connections=10)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            fake_slack = helpers[2] if slack else None
            yield Env(redis, helpers[0], helpers[1], cpus, http, fake_slack)
    finally:
        for helper in helpers:
            helper.stop()
        redis.stop()
        shutil.rmtree(redis.directory, ignore_errors=True)
