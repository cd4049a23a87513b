"""Builds the sink for one reply: the configured stream mode over shared Slack budgets."""

from __future__ import annotations

import logging
from dataclasses import replace

from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.native import NativeStreamSink
from bots.slack.pacing import Budget, Budgets
from bots.slack.settings import StreamMode
from bots.slack.sink import ReplyTarget, SlackSink
from core.commands import TurnRequest
from core.service import ChatService
from core.sink import LengthUnit, Segment, SegmentKind, SinkLimits

log = logging.getLogger(__name__)


def slack_limits(message_chars: int) -> SinkLimits:
    """Per message: `message_chars` of Markdown (see the README for why ~3,900).

    Slack accepts 40,000 characters of text but folds long messages behind "Show more"
    from about 4,000; rendering can grow text (escaping `&` costs 5×), and 3,900 × 5 still
    fits. Collapsed reasoning is shown as a quote, Slack's nearest thing to a collapse.
    """
    return SinkLimits(
        max_length=message_chars,
        unit=LengthUnit.CODEPOINTS,
        min_interval=1.0,
        supports_collapsed=True,
    )


class ReplyFactory:
    """One sink per reply; the budgets behind them are shared by all replies and replicas."""

    def __init__(
        self,
        client: AsyncWebClient,
        budgets: Budgets,
        *,
        mode: StreamMode,
        limits: SinkLimits,
    ) -> None:
        self._client = client
        self._budgets = budgets
        self._mode = mode
        self._limits = limits

    def sink(self, target: ReplyTarget) -> SlackSink | NativeStreamSink:
        """A sink writing one reply to `target`; in the assistant pane no placeholder message."""
        limits = replace(self._limits, status_line=False) if target.assistant else self._limits
        if self._mode is StreamMode.NATIVE:
            if target.thread_ts is None:  # streams are always thread replies (Slack's rule)
                target = replace(target, thread_ts=target.status_thread)
            pacer = self._budgets.for_reply(target.team, target.channel, Budget.STREAM)
            return NativeStreamSink(
                self._client,
                target,
                pacer=pacer,
                limits=limits,
                update_budget=self._budgets.workspace(target.team, Budget.UPDATE),
            )
        pacer = self._budgets.for_reply(target.team, target.channel, Budget.UPDATE)
        return SlackSink(self._client, target, pacer=pacer, limits=limits)

    async def note(self, target: ReplyTarget, text: str) -> None:
        """A short note from Parley as its own message (always a plain post)."""
        pacer = self._budgets.for_reply(target.team, target.channel, Budget.UPDATE)
        sink = SlackSink(self._client, target, pacer=pacer, limits=self._limits)
        await sink.pacer.acquire()
        await sink.send((Segment(SegmentKind.NOTICE, text),), final=True)


async def answer_turn(
    service: ChatService, replies: ReplyFactory, turn: TurnRequest, target: ReplyTarget
) -> None:
    """A turn that is not a new message (an edit, a button, /parley retry): the one admission,
    its reply written to ``target``."""
    sink = replies.sink(target)
    try:
        result = await service.submit(turn, sink)
    finally:
        await sink.close()
    log.info("slack %s %s: %s", turn.kind, turn.key, result.outcome)
