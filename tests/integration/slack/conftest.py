"""Parley's Slack adapter against the fake Slack, the fake vLLM and a real redis-server.

`redis_server` and `fake_vllm` come from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import redis

from bots.runtime import Runtime, open_runtime
from bots.slack.app import PHRASES, run
from bots.slack.settings import SlackSettings
from core.settings import CoreSettings
from tests.fakes.fake_slack import FakeSlack, Message, SlackSender, wait_until
from tests.fakes.fake_vllm import FakeVLLM
from tests.services import RedisServer, free_port
from tests.support.timing import eventually, patient

SIGNING_SECRET = "test-signing-secret"
ADMIN = "U0ADMIN"


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's real Redis (tests/conftest.py), emptied for this test."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """The fake Slack with fast windows: 12 updates/s per workspace, 5 posts/s per channel."""
    slack = FakeSlack(update_limit=12, update_window=1.0, post_limit=5, post_window=1.0)
    await slack.start()
    try:
        yield slack
    finally:
        await slack.close()


@dataclass
class RunningBot:
    """A running `parley slack` and the fakes around it."""

    slack: FakeSlack
    vllm: FakeVLLM
    runtime: Runtime
    settings: SlackSettings
    sender: SlackSender
    task: asyncio.Task[None]

    async def dm(self, user: str, text: str, *, channel: str = "D0USER1") -> dict[str, Any]:
        """A person writes to Parley directly (HTTP); returns the event sent."""
        event = self.slack.user_message(channel, user, text, channel_type="im")
        delivery = await self.sender.event(event)
        assert delivery.status == 200, delivery
        return event

    async def mention(
        self, user: str, text: str, *, channel: str = "C0GENERAL", thread_ts: str | None = None
    ) -> dict[str, Any]:
        """A person @mentions Parley in a channel (Slack sends app_mention and message)."""
        bot = self.slack.bot_user_id
        event = self.slack.user_message(channel, user, f"<@{bot}> {text}", thread_ts=thread_ts)
        delivery = await self.sender.event(self.slack.mention(event))
        assert delivery.status == 200, delivery
        return event

    async def answered(
        self, channel: str, thread: str | None, count: int = 1, timeout: float | None = None
    ) -> list[Message]:
        """Wait until `count` turns are over in that place (nothing streaming) and return them
        (by default for patient(15) s)."""
        timeout = patient(15.0) if timeout is None else timeout

        def settled() -> bool:
            replies = self.slack.bot_replies(channel, thread)
            return len(replies) >= count and not any(m.streaming for m in replies)

        await wait_until(settled, timeout=timeout)
        await self.idle(timeout)
        return self.slack.bot_replies(channel, thread)

    async def idle(self, timeout: float | None = None) -> None:
        """Wait until no turn is running (every lock released; by default for patient(15) s)."""

        async def free() -> bool:
            # SCAN, not KEYS: on a Cluster, KEYS asks one node and misses the other shards'.
            return not [key async for key in self.runtime.redis.scan_iter(match="parley:*:lock")]

        await eventually(free, timeout=15.0 if timeout is None else timeout, what="turns over")
        await asyncio.sleep(0.05)


StartBot = Callable[..., Awaitable[RunningBot]]
CORE_KEYS = set(CoreSettings.model_fields)


@pytest_asyncio.fixture
async def start_bot(
    fake_slack: FakeSlack, fake_vllm: FakeVLLM, redis_url: str
) -> AsyncIterator[StartBot]:
    """Start `bots.slack.app.run` in HTTP (default) or Socket Mode; stopped at teardown."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> RunningBot:
            core_values = {k: overrides.pop(k) for k in list(overrides) if k in CORE_KEYS}
            core = CoreSettings(
                **{
                    "llm_base_url": fake_vllm.base_url,
                    "redis_url": redis_url,
                    "admin_ids": f"slack:{ADMIN}",
                    **core_values,
                }
            )
            port = free_port()
            values: dict[str, Any] = {
                "slack_bot_token": fake_slack.bot_token,
                "slack_signing_secret": SIGNING_SECRET,
                "slack_api_url": fake_slack.api_url,
                "slack_http_listen": f"127.0.0.1:{port}",
                "slack_updates_per_minute": 600,
                "slack_channel_interval": 0.25,
                "slack_stream_appends_per_minute": 1200,
            }
            values.update(overrides)
            settings = SlackSettings(**values)
            runtime = await stack.enter_async_context(open_runtime(core, phrases=PHRASES))
            task = asyncio.create_task(run(runtime, settings), name="parley slack")
            stack.push_async_callback(_stop, task)
            sender = SlackSender(
                fake_slack, f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET
            )
            if settings.socket_mode:
                await asyncio.wait_for(fake_slack.socket_connected.wait(), patient(10))
            else:
                await _wait_http(f"http://127.0.0.1:{port}/healthz", task)
            return RunningBot(fake_slack, fake_vllm, runtime, settings, sender, task)

        yield start


async def _wait_http(url: str, task: asyncio.Task[None]) -> None:
    """Until the bot's HTTP server answers (or the bot died)."""
    deadline = time.monotonic() + patient(10)
    async with aiohttp.ClientSession() as session:
        while True:
            if task.done():
                task.result()
                raise AssertionError("the bot stopped before listening")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() < deadline, "the bot did not start listening"
            await asyncio.sleep(0.02)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel the bot and surface any crash it had."""
    if task.done():
        task.result()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
