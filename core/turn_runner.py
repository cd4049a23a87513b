"""The only way to the model: every turn (a message, a retry, what comes later) is submitted here.

``submit`` runs the whole gate in one place, in this order: shutdown → a cleaned, non-empty
message → the conversation's bounded line (no Redis) → access and quota (``core.admission``) →
the busy policy → the lease, in arrival order → the answer. A Redis blip before anything was
shown is ridden out; a turn is never started twice by accident nor run without admission.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from core.admission import Admission
from core.answer import Answerer
from core.briefing import Briefing
from core.commands import TurnKind, TurnRequest
from core.conversation import Role
from core.errors import StoreError
from core.intake import Intake, Ticket
from core.lifecycle import Lifecycle
from core.metrics import Metrics
from core.notes import say
from core.phrases import Phrases
from core.quotas import Quotas
from core.results import Outcome, TurnResult
from core.retry import BLIP, RetryPolicy
from core.settings import BusyPolicy
from core.sink import MessageSink
from core.store.protocol import ConversationStore
from core.text import clean_user_text
from core.turns import TurnBusy, TurnCoordinator
from core.usage import UsageStats

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class TurnRunner:
    """Admits, orders and runs turns; the answer itself is made by ``Answerer``."""

    answerer: Answerer
    store: ConversationStore
    turns: TurnCoordinator
    admission: Admission
    lifecycle: Lifecycle
    busy_policy: BusyPolicy = BusyPolicy.QUEUE
    intake: Intake = field(default_factory=Intake)
    phrases: Phrases = field(default_factory=Phrases)
    quotas: Quotas | None = None
    usage: UsageStats | None = None
    metrics: Metrics = field(default_factory=Metrics)
    retry: RetryPolicy = BLIP
    briefing: Briefing | None = None  # the chat's persona and instructions; None: the operator's

    async def submit(self, request: TurnRequest, sink: MessageSink) -> TurnResult:
        """Answer one request; problems are told to the person through ``sink``, never raised."""
        if not self.lifecycle.accepting:
            await say(sink, self.phrases.shutting_down)
            return self._count(TurnResult(Outcome.REFUSED))
        text = clean_user_text(request.text)
        if request.kind is TurnKind.MESSAGE and not text:
            await say(sink, self.phrases.empty_message)
            return self._count(TurnResult(Outcome.REFUSED))
        ticket = self.intake.enter(request.key)
        if ticket is None:
            notice = self.phrases.queue_full.format(stop_hint=self.phrases.stop_hint)
            await say(sink, await self.admission.once(request, "queue", notice))
            return self._count(TurnResult(Outcome.BUSY))
        with self.lifecycle.tracking():
            try:
                return self._count(await self._admitted(request, text, ticket, sink))
            finally:
                self.intake.leave(ticket)

    async def _admitted(
        self, request: TurnRequest, text: str, ticket: Ticket, sink: MessageSink
    ) -> TurnResult:
        """Admission, then the turn; Redis failing before the reply began is waited out."""
        try:
            refusal = await self._riding_out_blips(lambda: self.admission.admit(request))
            if refusal is not None:
                await say(sink, refusal.notice)
                return TurnResult(Outcome.REFUSED)
            return await self._riding_out_blips(lambda: self._in_order(request, text, ticket, sink))
        except StoreError as exc:
            log.error("store failure for %s: %s", request.key, exc)
            await say(sink, exc.user_message)
            return TurnResult(Outcome.FAILED, error=exc)

    async def _riding_out_blips(self, work: Callable[[], Awaitable[T]]) -> T:
        """A StoreError gets here only before a reply began (a failed save is told in the reply).

        So a Redis restart or failover of a second or two is waited out, unless shutting down.
        """
        return await self.retry.run(
            work,
            retry_on=(StoreError,),
            what="starting a turn",
            give_up=lambda: not self.lifecycle.accepting,
        )

    async def _in_order(
        self, request: TurnRequest, text: str, ticket: Ticket, sink: MessageSink
    ) -> TurnResult:
        """The busy policy, then the lease in arrival order, then the answer."""
        key = request.key
        policy = self.busy_policy
        if policy is BusyPolicy.REJECT and await self.turns.busy(key):
            return await self._busy(request, sink)
        if policy is BusyPolicy.INTERRUPT:
            await self.turns.signal_stop(key, "interrupted")
        self.metrics.queued_turns.inc()
        queued = True
        try:
            await ticket.wait_for_previous()
            ticket.pass_on()  # no await between this and queueing for the lease: order holds
            async with self.turns.turn(key, wait=policy is not BusyPolicy.REJECT) as lease:
                self.metrics.queued_turns.dec()
                queued = False
                history = await self.store.load(key)
                replace = request.kind is TurnKind.RETRY
                if replace:
                    if len(history) < 2 or history[-2].role is not Role.USER:
                        await say(sink, self.phrases.nothing_to_retry)
                        return TurnResult(Outcome.REFUSED)
                    text, history = history[-2].content, history[:-2]
                brief = await self.briefing.for_turn(request.caller) if self.briefing else None
                result = await self.answerer.answer(
                    key, text, history, sink, lease, replace=replace, brief=brief
                )
        except TurnBusy:
            return await self._busy(request, sink)
        finally:
            if queued:
                self.metrics.queued_turns.dec()
        await self._account(request, result)
        return result

    async def _busy(self, request: TurnRequest, sink: MessageSink) -> TurnResult:
        """Tell the person (once a minute) that this conversation is still being answered."""
        notice = self.phrases.busy.format(stop_hint=self.phrases.stop_hint)
        await say(sink, await self.admission.once(request, "busy", notice))
        return TurnResult(Outcome.BUSY)

    def _count(self, result: TurnResult) -> TurnResult:
        """Turns and errors by kind, for /metrics."""
        self.metrics.turns.labels(result.outcome.value).inc()
        if result.error is not None:
            self.metrics.errors.labels(type(result.error).__name__).inc()
        return result

    async def _account(self, request: TurnRequest, result: TurnResult) -> None:
        """Usage statistics and the daily token quota; never fails a turn already shown."""
        if result.outcome not in (Outcome.ANSWERED, Outcome.STOPPED, Outcome.INTERRUPTED):
            return
        platform, user = request.caller.platform, request.caller.user_id
        spent = result.usage_prompt + result.usage_completion
        try:
            if self.usage is not None:
                await self.usage.record_turn(
                    platform, user, result.usage_prompt, result.usage_completion
                )
            if self.quotas is not None:
                await self.quotas.spend_tokens(platform, user, spent)
        except StoreError as exc:
            log.warning("could not record usage: %s", exc)
