"""Parley's Slack production path, built the way the Slack adapter builds it, plus pacing stamps.

The counterpart of tools.bench.bot for Slack. Per conversation: ``ChatService.handle`` (real
Redis lease, load, fit, save), the real ``OpenAICompatibleClient``, ``ReplyStream``, and the
sink ``ReplyFactory`` hands out in the adapter's default stream mode (``SLACK_STREAM_MODE=update``:
a placeholder by chat.postMessage, then chat.update), rendering mrkdwn and calling slack_sdk's
``AsyncWebClient`` on one long-lived aiohttp session, each write waiting for the shared Redis
budgets of ``bots.slack.pacing`` (its channel's and its workspace's, one round trip). The sink
is closed after the turn as ``SlackHandlers._answer`` does (the DM's assistant status is set
while thinking and cleared at the end). Only intake (bolt's dispatch, dedup, the thread claim,
users.info for the language: once per turn, not per token) is skipped: each turn starts with a
direct ``handle`` call, as a direct message.

Edit lag is measured as for Telegram: the budgets' clock notes the slot each write was allowed
at and chat.postMessage/chat.update carry it to the fake Slack as ``bench_slot``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bots.gc_tuning import tune_for_serving
from bots.runtime import Runtime, open_runtime
from bots.slack.app import PHRASES, web_client
from bots.slack.inbound import conversation_key, reply_target
from bots.slack.pacing import Budget, BudgetRates, Budgets, SlackPacer
from bots.slack.replies import ReplyFactory, slack_limits
from bots.slack.settings import SlackSettings, StreamMode
from core.conversation import IncomingMessage
from core.pacing import SharedSlot
from core.results import TurnResult
from tools.bench.bot import SLOT, SlotClock, core_settings
from tools.bench.env import Env
from tools.bench.load import LoadRun, configure_stream, timed_turns

log = logging.getLogger(__name__)

TOKEN = "xoxb-fake-bot-token"  # noqa: S105 (FakeSlack's default bot token)
SIGNING_SECRET = "bench-signing-secret"  # noqa: S105 (HTTP mode needs one; never checked here)
_WRITES = frozenset({"chat.postMessage", "chat.update"})
# The mode a Slack bot streams in unless SLACK_STREAM_MODE says otherwise.
DEFAULT_MODE = StreamMode(SlackSettings.model_fields["slack_stream_mode"].default)


@dataclass(frozen=True)
class SlackPacing:
    """Slack's budgets as the adapter's settings express them (their defaults)."""

    updates_per_minute: float = 50.0  # SLACK_UPDATES_PER_MINUTE: chat.update, per workspace
    channel_interval: float = 1.0  # SLACK_CHANNEL_INTERVAL: seconds between a channel's writes


@dataclass(frozen=True)
class SlackLoad:
    """What to run: how many DM conversations (each in a workspace of its own), how long."""

    conversations: int
    stream_seconds: float
    token_interval: float
    ramp_seconds: float
    pacing: SlackPacing
    rtt: float
    first_token_delay: float = 0.2
    tokens_per_chunk: int = 1  # vLLM's --stream-interval


class StampingSlackPacer(SlackPacer):
    """The adapter's per-reply pacer; after ``acquire`` SLOT holds when the write was allowed."""

    async def acquire(self) -> None:
        """Without a wait the write was allowed when it asked (Redis round trip included)."""
        SLOT.set(None)
        asked = asyncio.get_running_loop().time()
        await super().acquire()
        if SLOT.get() is None:
            SLOT.set(asked)


class StampingBudgets(Budgets):
    """``Budgets.on_redis`` with the slot-noting clock, handing out stamping pacers."""

    def for_reply(self, team: str, channel: str, budget: Budget) -> SlackPacer:
        """As Budgets.for_reply: the channel's budget and the workspace's, shared via Redis."""
        return StampingSlackPacer(
            channel=self.channel(team, channel), workspace=self.workspace(team, budget)
        )


class StampingWebClient(AsyncWebClient):
    """The adapter's Web API client; writes carry their pacer slot in the query string."""

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | aiohttp.FormData | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        """Add ``bench_slot`` to chat.postMessage/chat.update sent from a reply's writer."""
        slot = SLOT.get()
        if slot is not None and api_method in _WRITES:
            params = {**(params or {}), "bench_slot": repr(slot)}
        return await super().api_call(
            api_method,
            http_verb=http_verb,
            files=files,
            data=data,
            params=params,
            json=json,
            headers=headers,
            auth=auth,
        )


def slack_settings(api_url: str, pacing: SlackPacing) -> SlackSettings:
    """The adapter's settings: defaults (the stream mode above all), the fake's URL, the pacing."""
    values: dict[str, Any] = {
        "slack_bot_token": TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": api_url,
        "slack_stream_mode": DEFAULT_MODE,
        "slack_updates_per_minute": pacing.updates_per_minute,
        "slack_channel_interval": pacing.channel_interval,
    }
    return SlackSettings(_env_file=None, **values)


@dataclass
class SlackBenchBot:
    """One Slack bot process's worth of Parley, pointed at the benchmark's helpers."""

    runtime: Runtime
    settings: SlackSettings
    client: AsyncWebClient
    replies: ReplyFactory

    async def converse(self, index: int, text: str) -> TurnResult:
        """One direct message answered end to end, as SlackHandlers._answer does it.

        Conversation ``index`` is user U…, DM channel D… in workspace T… of its own; the model
        sees ``[chat index]``."""
        team, channel, user = f"T{index:08d}", f"D{index:08d}", f"U{index:08d}"
        ts = f"{int(time.time())}.{index:06d}"  # the person's message, as Slack stamps it
        target = reply_target(
            team=team, channel=channel, user=user, thread=None, dm=True, anchor=ts
        )
        key = conversation_key(
            self.settings.slack_thread_scope, channel=channel, user=user, thread=None, dm=True
        )
        message = IncomingMessage(
            key, f"[chat {index}] {text}", user_id=user, message_id=ts, workspace=team
        )
        sink = self.replies.sink(target)
        try:
            return await self.runtime.service.handle(message, sink)
        finally:
            await sink.close()


@contextlib.asynccontextmanager
async def running_slack_bot(env: Env, pacing: SlackPacing) -> AsyncIterator[SlackBenchBot]:
    """Open the runtime (Redis emptied first), a Web API client and the reply factory."""
    settings = slack_settings(env.slack_url(), pacing)
    core = core_settings(f"{env.model.url}/v1", env.redis.url)
    async with open_runtime(core, phrases=PHRASES) as runtime:
        await runtime.redis.flushall()
        timeout = aiohttp.ClientTimeout(total=settings.slack_api_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:  # as bots.slack.app.run
            made = web_client(settings, session)
            client = StampingWebClient(
                token=made.token,
                base_url=made.base_url,
                timeout=made.timeout,
                session=session,
                retry_handlers=made.retry_handlers,
            )
            await client.auth_test()  # as check_token at start; opens the first connection
            rates = BudgetRates(  # as bots.slack.app.build_app
                update_interval=60.0 / settings.slack_updates_per_minute,
                stream_interval=60.0 / settings.slack_stream_appends_per_minute,
                channel_interval=settings.slack_channel_interval,
            )
            clock = SlotClock()
            redis = runtime.redis
            budgets = StampingBudgets(
                lambda key, interval: SharedSlot(redis, key, interval, clock=clock),
                rates,
                runtime.keys,
            )
            replies = ReplyFactory(
                client,
                budgets,
                mode=settings.slack_stream_mode,
                limits=slack_limits(settings.slack_message_chars),
            )
            tune_for_serving()  # as `parley slack` does once it is wired
            yield SlackBenchBot(runtime, settings, client, replies)


async def run_slack_load(env: Env, load: SlackLoad) -> LoadRun:
    """tools.bench.load.run_load for Slack: every conversation started over the ramp, timed."""
    await configure_stream(
        env,
        stream_seconds=load.stream_seconds,
        token_interval=load.token_interval,
        first_token_delay=load.first_token_delay,
        tokens_per_chunk=load.tokens_per_chunk,
    )
    await env.configure_slack(rtt=load.rtt)
    indices = list(range(1_000, 1_000 + load.conversations))
    async with running_slack_bot(env, load.pacing) as bench:
        turns = [functools.partial(bench.converse, index, "hello") for index in indices]
        timed = await timed_turns(env, turns, load.ramp_seconds)
    return timed.run(await env.slack_stats(), await env.model_stats(), indices)
