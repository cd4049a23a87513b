"""The only way to the model: every turn (a message, a retry, what comes later) is submitted here.

``submit`` runs the whole gate in one place, in this order: shutdown → a cleaned, non-empty
message → the conversation's bounded line (no Redis) → access and quota (``core.admission``) →
the busy policy → the lease, in arrival order → the answer. A Redis blip before anything was
shown is ridden out; a turn is never started twice by accident nor run without admission.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from core.admission import Admission
from core.answer import CONTINUE_PROMPT, Answerer, Rewrite
from core.answers import EDIT_WINDOW_SECONDS, AnswerBook, AnswerRecord
from core.briefing import Briefing
from core.clock import wall_time
from core.commands import TurnKind, TurnRequest
from core.conversation import Role
from core.errors import StoreError
from core.intake import Intake, Ticket
from core.languages import Languages
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
    languages: Languages = field(default_factory=Languages)  # the language each person is told in
    answers: AnswerBook | None = None  # which answer is the newest (buttons, edits)

    async def phrases_for(self, request: TurnRequest) -> Phrases:
        """The notices in the person's language (their choice, their platform's, the default)."""
        return self.phrases.in_language(await self.languages.translator(request.caller))

    async def submit(self, request: TurnRequest, sink: MessageSink) -> TurnResult:
        """Answer one request; problems are told to the person through ``sink``, never raised."""
        # The line is checked before any Redis call (the person's language included), so a
        # flood is turned away from process memory; the language is looked up only to speak.
        if not self.lifecycle.accepting:
            await say(sink, (await self.phrases_for(request)).shutting_down)
            return self._count(TurnResult(Outcome.REFUSED))
        if request.kind is TurnKind.EDIT:
            edited = await self._edited(request)
            if edited is None:  # not the newest question, too late, or answered already
                return self._count(TurnResult(Outcome.REFUSED))
            request = replace(request, answer=edited.id)
        text = clean_user_text(request.text)
        if request.kind in (TurnKind.MESSAGE, TurnKind.EDIT) and not text:
            await say(sink, (await self.phrases_for(request)).empty_message)
            return self._count(TurnResult(Outcome.REFUSED))
        ticket = self.intake.enter(request.key)
        if ticket is None:
            if await self.admission.first_notice(request, "queue"):
                phrases = await self.phrases_for(request)
                await say(sink, phrases.queue_full.format(stop_hint=phrases.stop_hint))
            return self._count(TurnResult(Outcome.BUSY))
        with self.lifecycle.tracking():
            try:
                phrases = await self.phrases_for(request)
                return self._count(await self._admitted(request, text, ticket, sink, phrases))
            finally:
                self.intake.leave(ticket)

    async def _admitted(
        self,
        request: TurnRequest,
        text: str,
        ticket: Ticket,
        sink: MessageSink,
        phrases: Phrases,
    ) -> TurnResult:
        """Admission, then the turn; Redis failing before the reply began is waited out."""
        try:
            refusal = await self._riding_out_blips(lambda: self.admission.admit(request, phrases))
            if refusal is not None:
                await say(sink, refusal.notice)
                return TurnResult(Outcome.REFUSED)
            return await self._riding_out_blips(
                lambda: self._in_order(request, text, ticket, sink, phrases)
            )
        except StoreError as exc:
            log.error("store failure for %s: %s", request.key, exc)
            await say(sink, phrases.error(exc))
            return TurnResult(Outcome.FAILED, error=exc)

    async def _edited(self, request: TurnRequest) -> AnswerRecord | None:
        """The answer an edit re-asks: the newest, stored, to this very message, not long ago.

        Each version of an edit is answered once, however often the platform delivers it.
        """
        if self.answers is None or not request.message_id:
            return None
        try:
            record = await self.answers.latest(request.key)
        except StoreError as exc:
            log.warning("ignoring an edit in %s: %s", request.key, exc)
            return None
        if (
            record is None
            or not record.saved
            or record.question != request.message_id
            or wall_time() - record.at > EDIT_WINDOW_SECONDS
        ):
            return None
        return record if await self.answers.first_edit(record, request.version) else None

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
        self,
        request: TurnRequest,
        text: str,
        ticket: Ticket,
        sink: MessageSink,
        phrases: Phrases,
    ) -> TurnResult:
        """The busy policy, then the lease in arrival order, then the answer."""
        key = request.key
        policy = self.busy_policy
        if policy is BusyPolicy.REJECT and await self.turns.busy(key):
            return await self._busy(request, sink, phrases)
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
                kind = request.kind
                record = await self._rewritten(request) if request.rewrites else None
                if request.rewrites and record is None:
                    if kind is not TurnKind.EDIT:  # an edit that lost a race stays quiet
                        await say(sink, phrases.too_old)
                    return TurnResult(Outcome.REFUSED)
                if kind is TurnKind.RETRY and self.answers is not None:
                    record = await self.answers.latest(key)  # the question is the same message
                replace = kind is not TurnKind.MESSAGE
                rewrite = Rewrite(record.refs) if record is not None and request.rewrites else None
                if replace:
                    if len(history) < 2 or history[-2].role is not Role.USER:
                        if kind is not TurnKind.EDIT:
                            await say(sink, phrases.nothing_to_retry)
                        return TurnResult(Outcome.REFUSED)
                    question, answered = history[-2], history[-1]
                    if kind is TurnKind.CONTINUE:
                        rewrite = Rewrite(
                            rewrite.refs if rewrite else (), question, answered.content
                        )
                        text = CONTINUE_PROMPT
                    elif kind is TurnKind.EDIT:
                        if text == question.content:  # only its formatting or a preview changed
                            return TurnResult(Outcome.REFUSED)
                        history = history[:-2]
                    else:
                        text, history = question.content, history[:-2]
                brief = await self.briefing.for_turn(request.caller) if self.briefing else None
                result = await self.answerer.answer(
                    key,
                    text,
                    history,
                    sink,
                    lease,
                    replace=replace,
                    brief=brief,
                    phrases=phrases,
                    owner=record.owner if record and request.rewrites else request.caller.user_id,
                    question_id=_question_id(request, record),
                    rewrite=rewrite,
                )
        except TurnBusy:
            return await self._busy(request, sink, phrases)
        finally:
            if queued:
                self.metrics.queued_turns.dec()
        await self._account(request, result, phrases.language)
        return result

    async def _rewritten(self, request: TurnRequest) -> AnswerRecord | None:
        """The answer a regenerate, continue or edit writes over, if it is still the newest."""
        if self.answers is None or not request.answer:
            return None
        record = await self.answers.get(request.answer)
        if record is None or not record.saved or not await self.answers.is_latest(record):
            return None
        return record

    async def _busy(self, request: TurnRequest, sink: MessageSink, phrases: Phrases) -> TurnResult:
        """Tell the person (once a minute) that this conversation is still being answered."""
        notice = phrases.busy.format(stop_hint=phrases.stop_hint)
        await say(sink, await self.admission.once(request, "busy", notice))
        return TurnResult(Outcome.BUSY)

    def _count(self, result: TurnResult) -> TurnResult:
        """Turns and errors by kind, for /metrics."""
        self.metrics.turns.labels(result.outcome.value).inc()
        if result.error is not None:
            self.metrics.errors.labels(type(result.error).__name__).inc()
        return result

    async def _account(self, request: TurnRequest, result: TurnResult, language: str) -> None:
        """Usage statistics and the daily token quota; never fails a turn already shown."""
        if result.outcome not in (Outcome.ANSWERED, Outcome.STOPPED, Outcome.INTERRUPTED):
            return
        platform, user = request.caller.platform, request.caller.user_id
        spent = result.usage_prompt + result.usage_completion
        try:
            if self.usage is not None:
                await self.usage.record_turn(
                    platform,
                    user,
                    result.usage_prompt,
                    result.usage_completion,
                    conversation=str(request.key),
                    language=language,
                )
            if self.quotas is not None:
                await self.quotas.spend_tokens(platform, user, spent)
        except StoreError as exc:
            log.warning("could not record usage: %s", exc)


def _question_id(request: TurnRequest, record: AnswerRecord | None) -> str:
    """The message the new answer answers: the person's own, or the one answered before."""
    if request.kind in (TurnKind.MESSAGE, TurnKind.EDIT):
        return request.message_id
    return record.question if record is not None else ""
