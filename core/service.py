"""ChatService: one message in, one streamed and remembered answer out, whatever goes wrong."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from core.access import AccessControl, Subject
from core.audit import AuditLog
from core.clock import Clock, LoopClock, wall_time
from core.context import FittedPrompt, MessageTooLong, fit
from core.conversation import (
    ConversationKey,
    IncomingMessage,
    Role,
    StoredMessage,
    StoreStats,
    Turn,
)
from core.errors import BotError, ContextTooLong, LLMError, StoreError
from core.llm.client import LLMClient
from core.llm.events import Finished, ReasoningDelta, SamplingParams, StreamEvent, TextDelta
from core.metrics import Metrics
from core.phrases import Phrases
from core.quotas import Quotas
from core.settings import BusyPolicy, CoreSettings
from core.sink import MessageSink, Segment, SegmentKind
from core.store.protocol import BLIP_RETRY_DELAYS, ConversationStore
from core.stream.reply import ReplyStream
from core.text import clean_user_text
from core.tokens import TokenCounter, assistant_visible
from core.turns import TurnBusy, TurnCoordinator, TurnLease
from core.usage import UsageReport, UsageStats

log = logging.getLogger(__name__)

_MARGIN_TOKENS = 16  # template/tokeniser slack beyond our exact count


class Outcome(StrEnum):
    """How a turn ended."""

    ANSWERED = "answered"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"
    BUSY = "busy"
    FAILED = "failed"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What happened to one message, for adapters, metrics and tests."""

    outcome: Outcome
    answer: str = ""
    error: BotError | None = None
    saved: bool = False
    dropped_turns: int = 0
    usage_prompt: int = 0
    usage_completion: int = 0


@dataclass(slots=True)
class _Generation:
    """How the model stream ended."""

    finish_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    stop_reason: str = ""
    error: LLMError | None = None
    first_token_at: float | None = None


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """Token budget derived from the server's context length and LLM_MAX_TOKENS."""

    context_tokens: int
    reply_tokens: int

    @property
    def prompt_budget(self) -> int:
        """What history plus the new message may use."""
        return self.context_tokens - self.reply_tokens - _MARGIN_TOKENS


@dataclass
class ChatService:
    """Runs turns: busy policy → lease → load → fit → stream → save the whole turn."""

    settings: CoreSettings
    store: ConversationStore
    turns: TurnCoordinator
    llm: LLMClient
    counter: TokenCounter
    clock: Clock = field(default_factory=LoopClock)
    phrases: Phrases = field(default_factory=Phrases)
    access: AccessControl | None = None
    quotas: Quotas | None = None
    usage: UsageStats | None = None
    audit: AuditLog | None = None
    metrics: Metrics = field(default_factory=Metrics)
    _limits: ServiceLimits | None = None
    _accepting: bool = True
    _in_flight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    # -- public API -------------------------------------------------------------------------

    async def handle(self, message: IncomingMessage, sink: MessageSink) -> TurnResult:
        """Answer one message; problems are told to the user through ``sink``, never raised."""
        if not self._accepting:
            await _say(sink, self.phrases.shutting_down)
            return self._count(TurnResult(Outcome.REFUSED))
        text = clean_user_text(message.text)
        if not text:
            await _say(sink, self.phrases.empty_message)
            return self._count(TurnResult(Outcome.REFUSED))
        self._enter()
        try:
            return self._count(await self._handle_riding_out_blips(message, text, sink))
        finally:
            self._leave()

    async def _handle_riding_out_blips(
        self, message: IncomingMessage, text: str, sink: MessageSink
    ) -> TurnResult:
        """The turn, started again if Redis fails before anything was shown.

        A StoreError gets out of a turn only before its reply began (a failed save is told in
        the reply itself), so a Redis restart or failover of a second or two is waited out.
        """
        delays = iter(_ADMISSION_RETRY_DELAYS)
        while True:
            try:
                return await self._handle_in_order(message, text, sink)
            except StoreError as exc:
                delay = next(delays, None)
                if delay is None or not self._accepting:
                    log.error("store failure for %s: %s", message.key, exc)
                    await _say(sink, exc.user_message)
                    return TurnResult(Outcome.FAILED, error=exc)
                log.warning("store failure for %s, retrying: %s", message.key, exc)
                await self.clock.sleep(delay)

    async def _admission(self, message: IncomingMessage) -> str | None:
        """None if the message may be answered, else what to tell the user ('' = nothing)."""
        key = message.key
        if self.access is not None:
            subject = Subject(key.platform, message.user_id, key.chat, message.workspace)
            if not await self.access.allowed(subject):
                log.info("refused %s:%s (access)", key.platform, message.user_id)
                told = await self.access.first_refusal(subject)
                return self.phrases.refused if told else ""
        if self.quotas is not None and not message.is_admin:
            verdict = await self.quotas.admit(key.platform, message.user_id)
            if not verdict.allowed:
                reason = (
                    "messages per minute"
                    if verdict.reason == "messages_per_minute"
                    else "tokens per day"
                )
                wait = _duration(verdict.wait_seconds)
                return self.phrases.over_quota.format(reason=reason, wait=wait)
        return None

    async def _handle_in_order(
        self, message: IncomingMessage, text: str, sink: MessageSink
    ) -> TurnResult:
        """Busy policy, then admission and the turn in arrival order under the lease.

        Admission runs inside the conversation's FIFO: checking it first (it awaits Redis)
        would let a later message overtake an earlier one.
        """
        policy = self.settings.busy_policy
        try:
            if policy is BusyPolicy.REJECT and await self.turns.busy(message.key):
                return await self._busy(sink)
            if policy is BusyPolicy.INTERRUPT:
                await self.turns.signal_stop(message.key, "interrupted")
            self.metrics.queued_turns.inc()
            queued = True
            try:
                async with self.turns.turn(
                    message.key, wait=policy is not BusyPolicy.REJECT
                ) as lease:
                    self.metrics.queued_turns.dec()
                    queued = False
                    refusal = await self._admission(message)
                    if refusal is not None:
                        if refusal:
                            await _say(sink, refusal)
                        return TurnResult(Outcome.REFUSED)
                    history = await self.store.load(message.key)
                    return await self._run(
                        message.key, text, history, sink, lease, replace=False,
                        user_id=message.user_id,
                    )  # fmt: skip
            finally:
                if queued:
                    self.metrics.queued_turns.dec()
        except TurnBusy:
            return await self._busy(sink)

    async def retry(self, key: ConversationKey, sink: MessageSink, *, user_id: str) -> TurnResult:
        """Answer the last user message again; the new answer replaces the old one."""
        try:
            async with self.turns.turn(key, wait=True) as lease:
                history = await self.store.load(key)
                if len(history) < 2 or history[-2].role is not Role.USER:
                    await _say(sink, self.phrases.nothing_to_retry)
                    return TurnResult(Outcome.REFUSED)
                text = history[-2].content
                return await self._run(
                    key, text, history[:-2], sink, lease, replace=True, user_id=user_id
                )
        except StoreError as exc:
            log.error("store failure for %s: %s", key, exc)
            await _say(sink, exc.user_message)
            return TurnResult(Outcome.FAILED, error=exc)

    async def stop(self, key: ConversationKey) -> bool:
        """Stop the reply running in this conversation, wherever it runs; keeps what was shown."""
        return await self.turns.signal_stop(key, "stopped")

    async def reset(self, key: ConversationKey) -> bool:
        """Forget one conversation (the user's own /reset)."""
        return await self.store.clear(key)

    async def forget(self, platform: str, user: str) -> int:
        """Delete all of a user's history on a platform (privacy: /forget)."""
        removed = await self.store.clear_user(platform, user)
        await self._audit(f"{platform}:{user}", "forget", f"{platform}:{user}", f"{removed}")
        return removed

    async def reset_user(self, platform: str, user: str, *, actor: str = "") -> int:
        """Admin: forget all of a user's conversations on a platform."""
        removed = await self.store.clear_user(platform, user)
        await self._audit(actor, "reset_user", f"{platform}:{user}", f"{removed}")
        return removed

    async def reset_chat(self, platform: str, chat: str, *, actor: str = "") -> int:
        """Admin: forget every conversation in a chat or channel."""
        removed = await self.store.clear_chat(platform, chat)
        await self._audit(actor, "reset_chat", f"{platform}:{chat}", f"{removed}")
        return removed

    async def reset_all(self, *, actor: str = "") -> int:
        """Admin: forget everything."""
        removed = await self.store.clear_all()
        await self._audit(actor, "reset_all", "*", f"{removed}")
        return removed

    async def stats(self) -> StoreStats:
        """What the store holds."""
        return await self.store.stats()

    async def usage_report(self) -> UsageReport:
        """Users, turns and tokens per platform, today and in total."""
        return await self.usage.report() if self.usage is not None else UsageReport()

    async def _audit(self, actor: str, action: str, target: str, detail: str) -> None:
        """Record an admin action; an audit failure is logged, never hidden."""
        log.info("admin action %s on %s by %s", action, target, actor or "unknown")
        if self.audit is not None:
            try:
                await self.audit.record(actor or "unknown", action, target, detail)
            except StoreError as exc:
                log.error("could not write the audit log: %s", exc)

    # -- graceful shutdown --------------------------------------------------------------------

    def _enter(self) -> None:
        """A message is being handled."""
        self._in_flight += 1
        self._idle.clear()

    def _leave(self) -> None:
        """A message is done."""
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def shutdown(self, grace_seconds: float) -> None:
        """Take no new messages; let replies finish within the grace period, then end them."""
        self._accepting = False
        if self._in_flight == 0:
            return
        try:
            async with asyncio.timeout(grace_seconds):
                await self._idle.wait()
            return
        except TimeoutError:
            log.warning("%d replies still running after %.0f s; ending them", self._in_flight,
                        grace_seconds)  # fmt: skip
        for lease in self.turns.leases():
            lease.request_stop("shutdown")
        try:
            async with asyncio.timeout(10):
                await self._idle.wait()
        except TimeoutError:
            log.error("replies did not end after being stopped")

    async def limits(self) -> ServiceLimits:
        """The context budget, from LLM_CONTEXT_TOKENS or the server's max_model_len."""
        if self._limits is None:
            context = self.settings.llm_context_tokens
            if context is None:
                info = await self.llm.model_info()
                context = info.max_model_len or 4096
            reply = min(self.settings.llm_max_tokens, context // 2)
            if reply < self.settings.llm_max_tokens:  # `parley doctor` warns about it
                log.info(
                    "LLM_MAX_TOKENS=%d is over half of the %d-token context; replies get %d",
                    self.settings.llm_max_tokens,
                    context,
                    reply,
                )
            self._limits = ServiceLimits(context, reply)
        return self._limits

    # -- accounting ---------------------------------------------------------------------------

    def _count(self, result: TurnResult) -> TurnResult:
        """Turns and errors by kind, for /metrics."""
        self.metrics.turns.labels(result.outcome.value).inc()
        if result.error is not None:
            self.metrics.errors.labels(type(result.error).__name__).inc()
        return result

    def _observe(self, reply: ReplyStream, generation: _Generation, started: float) -> None:
        """Latency, throughput and pacing of one streamed reply."""
        m = self.metrics
        if generation.first_token_at is not None:
            m.time_to_first_token.observe(generation.first_token_at - started)
            elapsed = self.clock.now() - generation.first_token_at
            if generation.completion_tokens and elapsed > 0:
                m.tokens_per_second.observe(generation.completion_tokens / elapsed)
        if reply.stats.first_visible_at is not None:
            m.time_to_first_answer.observe(reply.stats.first_visible_at - started)
        m.edits.labels("sent").inc(reply.stats.sends + reply.stats.edits)
        m.edits.labels("skipped").inc(reply.skipped_writes)
        m.rate_limited.inc(reply.stats.rate_limited)
        m.tokens.labels("in").inc(generation.prompt_tokens)
        m.tokens.labels("out").inc(generation.completion_tokens)

    async def _account(self, platform: str, user_id: str, result: TurnResult) -> None:
        """Usage statistics and the daily token quota; never fails a turn already shown."""
        if result.outcome not in (Outcome.ANSWERED, Outcome.STOPPED, Outcome.INTERRUPTED):
            return
        spent = result.usage_prompt + result.usage_completion
        try:
            if self.usage is not None:
                await self.usage.record_turn(
                    platform, user_id, result.usage_prompt, result.usage_completion
                )
            if self.quotas is not None:
                await self.quotas.spend_tokens(platform, user_id, spent)
        except StoreError as exc:
            log.warning("could not record usage: %s", exc)

    # -- one turn -----------------------------------------------------------------------------

    async def _busy(self, sink: MessageSink) -> TurnResult:
        """Tell the user this conversation is still being answered."""
        await _say(sink, self.phrases.busy.format(stop_hint=self.phrases.stop_hint))
        return TurnResult(Outcome.BUSY)

    async def _run(
        self,
        key: ConversationKey,
        text: str,
        history: Sequence[StoredMessage],
        sink: MessageSink,
        lease: TurnLease,
        *,
        replace: bool,
        user_id: str,
    ) -> TurnResult:
        """Fit, stream and save one turn while holding the conversation's lease."""
        user = StoredMessage(Role.USER, text, self.counter.count(text), wall_time())
        try:
            limits = await self.limits()
            fitted = self._fit(history, user, limits.prompt_budget)
        except MessageTooLong as exc:
            await _say(sink, self.phrases.too_long.format(tokens=exc.tokens, limit=exc.limit))
            return TurnResult(Outcome.REFUSED, error=exc)
        except LLMError as exc:
            log.warning("model server unavailable before %s: %s", key, exc)
            await _say(sink, exc.user_message)
            return TurnResult(Outcome.FAILED, error=exc)

        reply = ReplyStream(sink, show_reasoning=self.settings.show_reasoning, clock=self.clock)
        started = self.clock.now()
        self.metrics.active_streams.inc()
        try:
            await reply.start()
            if lease.previous_lost:
                reply.add_notice(self.phrases.previous_lost)
            try:
                generation = await self._generate(fitted, limits, reply, lease, history, user)
            except BaseException:
                await reply.cancel()
                raise
            result = await self._conclude(key, user, fitted, reply, generation, replace=replace)
        finally:
            self.metrics.active_streams.dec()
        self._observe(reply, generation, started)
        await self._account(key.platform, user_id, result)
        return result

    def _fit(
        self, history: Sequence[StoredMessage], user: StoredMessage, budget: int
    ) -> FittedPrompt:
        """Fit history with the operator's instructions folded into the first user turn."""
        instructions = self.settings.llm_instructions.strip()
        return fit(
            history,
            user,
            budget=budget,
            instructions=instructions,
            instruction_tokens=self.counter.count(instructions) if instructions else 0,
        )

    async def _generate(
        self,
        fitted: FittedPrompt,
        limits: ServiceLimits,
        reply: ReplyStream,
        lease: TurnLease,
        history: Sequence[StoredMessage],
        user: StoredMessage,
    ) -> _Generation:
        """Stream the answer into ``reply``; one harder-trimmed retry if vLLM still says 400."""
        for attempt in range(2):
            room = limits.context_tokens - fitted.prompt_tokens
            params = SamplingParams(
                temperature=self.settings.llm_temperature,
                top_p=self.settings.llm_top_p,
                max_tokens=max(16, min(limits.reply_tokens, room)),
            )
            generation = await self._pump(self.llm.stream(fitted.messages, params), reply, lease)
            error = generation.error
            if isinstance(error, ContextTooLong) and attempt == 0 and not reply.has_output:
                overshoot = (error.prompt_tokens or 0) - fitted.prompt_tokens
                budget = limits.prompt_budget - max(overshoot, limits.prompt_budget // 4)
                log.warning("context still too long (%s); trimming harder", error)
                try:
                    fitted = self._fit(history, user, budget)
                except MessageTooLong:
                    return generation
                continue
            return generation
        return generation

    async def _pump(
        self, events: AsyncIterator[StreamEvent], reply: ReplyStream, lease: TurnLease
    ) -> _Generation:
        """Read the model stream until it ends, fails, or someone asks to stop."""
        generation = _Generation()

        async def consume() -> None:
            async for event in events:
                if generation.first_token_at is None:
                    generation.first_token_at = self.clock.now()
                if isinstance(event, TextDelta):
                    reply.add_answer(event.text)
                elif isinstance(event, ReasoningDelta):
                    reply.add_reasoning(event.text)
                elif isinstance(event, Finished):
                    generation.finish_reason = event.reason
                    if event.usage is not None:
                        generation.prompt_tokens = event.usage.prompt_tokens
                        generation.completion_tokens = event.usage.completion_tokens

        consumer = asyncio.create_task(consume(), name="model stream")
        stopper = asyncio.create_task(lease.stop.wait(), name="stop watch")
        try:
            await asyncio.wait({consumer, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not consumer.done():
                consumer.cancel()  # closing the stream makes vLLM abort the request
            await asyncio.gather(consumer, stopper, return_exceptions=True)
        if lease.stop.is_set() and not generation.finish_reason:
            generation.stop_reason = lease.reason or "stopped"
            return generation
        exc = consumer.exception() if not consumer.cancelled() else None
        if isinstance(exc, LLMError):
            generation.error = exc
        elif exc is not None:
            raise exc
        return generation

    async def _conclude(
        self,
        key: ConversationKey,
        user: StoredMessage,
        fitted: FittedPrompt,
        reply: ReplyStream,
        generation: _Generation,
        *,
        replace: bool,
    ) -> TurnResult:
        """Finish the visible reply, then save the turn only if it is whole (or stopped)."""
        phrases = self.phrases
        error = generation.error
        if error is not None:
            log.warning("model failure in %s: %s", key, error)
            reply.add_notice(error.user_message)
            await reply.finish()
            return TurnResult(Outcome.FAILED, reply.answer, error=error)

        if generation.stop_reason == "shutdown":
            reply.add_notice(phrases.interrupted_shutdown)
            await reply.finish()
            return TurnResult(Outcome.INTERRUPTED, reply.answer)  # the user sends it again
        stopped = bool(generation.stop_reason)
        if stopped:
            interrupted = generation.stop_reason == "interrupted"
            reply.add_notice(phrases.interrupted if interrupted else phrases.stopped)
            outcome = Outcome.INTERRUPTED if interrupted else Outcome.STOPPED
        else:
            outcome = Outcome.ANSWERED
            if not reply.answer:
                length = generation.finish_reason == "length"
                reply.add_notice(phrases.out_of_room if length else phrases.no_answer)
            elif generation.finish_reason == "length":
                reply.add_notice(phrases.cut_short)
        if fitted.first_drop:
            reply.add_notice(phrases.trimmed)
        await reply.finish()

        answer = reply.answer
        if not answer:
            return TurnResult(outcome, "", dropped_turns=fitted.dropped_turns)
        stored = StoredMessage(
            Role.ASSISTANT, answer, self.counter.count(assistant_visible(answer)), wall_time()
        )
        saved = await self._save(key, Turn(user, stored), reply, replace=replace)
        return TurnResult(
            outcome,
            answer,
            saved=saved,
            dropped_turns=fitted.dropped_turns,
            usage_prompt=generation.prompt_tokens or fitted.prompt_tokens,
            usage_completion=generation.completion_tokens
            or self.counter.count(reply.reasoning) + stored.tokens,
        )

    async def _save(
        self, key: ConversationKey, turn: Turn, reply: ReplyStream, *, replace: bool
    ) -> bool:
        """Store the turn atomically, retrying through a Redis blip; if that fails, say so.

        Retrying is safe: the store saves a turn at most once (by ``Turn.id``), so an attempt
        that was applied but whose reply was lost is not stored twice by the next one.
        """
        for delay in (*BLIP_RETRY_DELAYS, None):
            try:
                if replace:
                    await self.store.replace_last(key, turn)
                else:
                    await self.store.append(key, turn)
                return True
            except StoreError as exc:
                if delay is None:
                    log.error("could not save a turn of %s: %s", key, exc)
                    break
                log.warning("saving a turn of %s failed, retrying: %s", key, exc)
                await self.clock.sleep(delay)
        reply.add_notice(self.phrases.not_saved)
        await reply.finish()
        return False


# Seconds between attempts to start a turn when Redis fails before anything was shown: a
# restart or failover of a second or two is waited out.
_ADMISSION_RETRY_DELAYS = (0.25, 0.5, 1.0)


def _duration(seconds: int) -> str:
    """ "45 s", "12 min", "3 h 5 min" for telling users when they can continue."""
    if seconds < 60:
        return f"{seconds} s"
    minutes = (seconds + 59) // 60
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


async def _say(sink: MessageSink, text: str) -> None:
    """Send a short note from Parley; a platform failure here is only logged."""
    try:
        await sink.pacer.acquire()
        await sink.send((Segment(SegmentKind.NOTICE, text),), final=True)
    except BotError as exc:
        log.warning("could not tell the user: %s", exc)
