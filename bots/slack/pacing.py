"""Slack's write budgets: per workspace (chat.update, streams) and per channel (posts), in Redis.

Every budget of one workspace shares a hash tag, so a write takes its channel's and its
workspace's budgets in one script: one Redis round trip per write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from core.pacing import RedisBudgetPacer, SharedSlot
from core.sink import Pacer
from core.store.client import RedisClient
from core.store.keys import KeySpace

_GROUP = "slpace"  # the hash tag's group: every budget of one workspace on one cluster slot


class Budget(StrEnum):
    """Which budget a Slack method spends."""

    UPDATE = "chat.update"  # Tier 3, per workspace
    STREAM = "chat.appendStream"  # Tier 4, per workspace
    CHANNEL = "channel"  # ~1 post per second per channel


class SlackPacer:
    """One reply's pacer: its channel's budget and a workspace budget, both shared via Redis.

    A write waits for both, so posts also spend a workspace slot (conservative: one per message).
    A 429 pushes back only the budget Slack complained about, so one busy channel does not stall
    the whole workspace.
    """

    def __init__(self, *, channel: Pacer, workspace: Pacer) -> None:
        self._channel = channel
        self._workspace = workspace
        self._blamed: Pacer = workspace
        self._both: Pacer | None = None  # both budgets in one round trip, when both are in Redis

    @property
    def workspace(self) -> Pacer:
        """The workspace budget this reply currently spends."""
        return self._workspace

    def use_workspace(self, workspace: Pacer) -> None:
        """Switch budgets, e.g. when a native stream falls back to chat.update."""
        self._workspace = workspace
        self._blamed = workspace
        self._both = None

    def blame(self, budget: Budget) -> None:
        """Record which budget the next penalize() belongs to (set by the sink on a 429)."""
        self._blamed = self._channel if budget is Budget.CHANNEL else self._workspace

    async def acquire(self) -> None:
        """Wait for the channel, then for the workspace (one round trip when both are shared)."""
        both = self._both or self._combined()
        if both is not None:
            await both.acquire()
            return
        await self._channel.acquire()
        await self._workspace.acquire()

    def _combined(self) -> Pacer | None:
        """One pacer taking the channel's spacing and the workspace's slot in one script."""
        channel, workspace = self._channel, self._workspace
        if not (isinstance(channel, SharedSlot) and isinstance(workspace, SharedSlot)):
            return None
        self._both = RedisBudgetPacer(
            channel.redis, [channel.spacing], queue=workspace.spacing, clock=channel.clock
        )
        return self._both

    def penalize(self, retry_after: float) -> None:
        """Slack answered 429: hold back the budget it was about, for every replica."""
        self._blamed.penalize(retry_after)


@dataclass(frozen=True, slots=True)
class BudgetRates:
    """Seconds between writes for each budget (from SlackSettings)."""

    update_interval: float
    stream_interval: float
    channel_interval: float


class Budgets:
    """Builds Redis-backed pacers whose keys every replica shares."""

    def __init__(
        self,
        make: Callable[[str, float], Pacer],
        rates: BudgetRates,
        keys: KeySpace,
    ) -> None:
        self._make = make
        self._rates = rates
        self._keys = keys

    @classmethod
    def on_redis(cls, redis: RedisClient, rates: BudgetRates, keys: KeySpace) -> Budgets:
        """The production budgets, in the Redis every replica shares."""
        return cls(lambda key, interval: SharedSlot(redis, key, interval), rates, keys)

    def workspace(self, team: str, budget: Budget) -> Pacer:
        """The workspace-wide budget for one method family."""
        interval = (
            self._rates.update_interval if budget is Budget.UPDATE else self._rates.stream_interval
        )
        return self._make(self._keys.budget(_GROUP, team, budget.value), interval)

    def channel(self, team: str, channel: str) -> Pacer:
        """The per-channel post budget."""
        key = self._keys.budget(_GROUP, team, "channel", channel)
        return self._make(key, self._rates.channel_interval)

    def for_reply(self, team: str, channel: str, budget: Budget) -> SlackPacer:
        """A fresh pacer for one reply; its budgets are shared with every other reply."""
        return SlackPacer(
            channel=self.channel(team, channel), workspace=self.workspace(team, budget)
        )
