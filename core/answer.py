"""One answer: fit the history, stream the model into the reply, save the whole turn or nothing.

Runs only inside a turn the runner admitted and leased (``core.turn_runner``); it never decides
who may talk, only how the answer is made.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from core.answers import AnswerBook, AnswerRecord
from core.briefing import Brief
from core.clock import Clock, LoopClock, wall_time
from core.context import FittedPrompt, MessageTooLong, fit
from core.conversation import ConversationKey, Role, StoredMessage, Turn
from core.errors import ContextTooLong, LeaseLost, LLMError, StoreError
from core.llm.client import LLMClient
from core.llm.events import Finished, ReasoningDelta, SamplingParams, StreamEvent, TextDelta
from core.metrics import Metrics
from core.notes import say
from core.phrases import Phrases
from core.results import Outcome, TurnResult
from core.retry import BLIP, RetryPolicy
from core.settings import CoreSettings
from core.sink import NO_CONTROLS, Button, Control, Controls, MessageRef, MessageSink
from core.store.protocol import ConversationStore
from core.stream.reply import ReplyStream, ReplyTexts
from core.tokens import TokenCounter, assistant_visible
from core.turns import TurnLease

log = logging.getLogger(__name__)

_MARGIN_TOKENS = 16  # template/tokeniser slack beyond our exact count
# What the model is asked when an answer cut by the token limit is continued (never shown).
CONTINUE_PROMPT = "Continue exactly where your previous answer stopped, without repeating it."


@dataclass(frozen=True, slots=True)
class Rewrite:
    """An earlier answer this one is written over (regenerate, continue, an edited question)."""

    refs: tuple[MessageRef, ...] = ()  # the messages that showed it
    question: StoredMessage | None = None  # continuing: the question the whole answer answers
    answer: str = ""  # continuing: the answer so far, which the new text extends


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
class Answerer:
    """Makes one answer while the conversation's lease is held."""

    settings: CoreSettings
    store: ConversationStore
    llm: LLMClient
    counter: TokenCounter
    clock: Clock = field(default_factory=LoopClock)
    phrases: Phrases = field(default_factory=Phrases)
    metrics: Metrics = field(default_factory=Metrics)
    retry: RetryPolicy = BLIP
    answers: AnswerBook | None = None  # records behind the buttons (None: no buttons)
    # By context length and reply budget: servers may differ, and personas may set max_tokens.
    _limits: dict[tuple[int, int], ServiceLimits] = field(default_factory=dict)

    async def limits(self, affinity: str = "", max_tokens: int | None = None) -> ServiceLimits:
        """The budget on the server ``affinity`` goes to (see ``ModelInfo.context_tokens``)."""
        info = await self.llm.model_info(affinity=affinity)
        context = info.context_tokens(self.settings.llm_context_tokens)
        return self._limits_for(context, max_tokens)

    def _limits_for(self, context: int, max_tokens: int | None = None) -> ServiceLimits:
        """The budget for one context length and reply budget (LLM_MAX_TOKENS by default)."""
        wanted = max_tokens or self.settings.llm_max_tokens
        limits = self._limits.get((context, wanted))
        if limits is None:
            reply = min(wanted, context // 2)
            if reply < wanted:  # `parley doctor` warns about it
                log.info(
                    "a reply budget of %d tokens is over half of the %d-token context; "
                    "replies get %d",
                    wanted,
                    context,
                    reply,
                )
            limits = self._limits[(context, wanted)] = ServiceLimits(context, reply)
        return limits

    async def answer(
        self,
        key: ConversationKey,
        text: str,
        history: Sequence[StoredMessage],
        sink: MessageSink,
        lease: TurnLease,
        *,
        replace: bool,
        brief: Brief | None = None,
        phrases: Phrases | None = None,
        owner: str = "",
        question_id: str = "",
        rewrite: Rewrite | None = None,
    ) -> TurnResult:
        """Fit, stream and save one turn while holding the conversation's lease.

        ``brief`` holds the chat's instructions and sampling (``core.briefing``); without one,
        LLM_INSTRUCTIONS and the configured sampling apply. ``phrases`` are the person's, in
        their language. ``owner`` (who may press the answer's buttons) and ``question_id`` (the
        message an edit would re-ask) go into the answer's record; ``rewrite`` names an earlier
        answer this one is written over.
        """
        phrases = phrases or self.phrases
        if brief is None:
            brief = Brief(instructions=self.settings.llm_instructions.strip())
        user = StoredMessage(Role.USER, text, self.counter.count(text), wall_time())
        affinity = str(key)  # the conversation's server (core.llm.servers) and session header
        try:
            limits = await self.limits(affinity, brief.max_tokens)
            fitted = self._fit(history, user, limits.prompt_budget, brief.instructions)
        except MessageTooLong as exc:
            if exc.limit <= 0 and brief.instructions:  # the instructions alone leave no room
                await say(sink, phrases.instructions_too_long)
            else:
                await say(sink, phrases.too_long.format(tokens=exc.tokens, limit=exc.limit))
            return TurnResult(Outcome.REFUSED, error=exc)
        except LLMError as exc:
            log.warning("model server unavailable before %s: %s", key, exc)
            await say(sink, phrases.error(exc))
            return TurnResult(Outcome.FAILED, error=exc)

        rewrite = rewrite or Rewrite()
        record = await self._begin(key, owner, question_id)
        stop = (
            Controls(record.id, (Button(Control.STOP, phrases.stop_button),))
            if record is not None
            else NO_CONTROLS
        )
        reply = ReplyStream(
            sink,
            show_reasoning=self.settings.show_reasoning,
            clock=self.clock,
            texts=ReplyTexts.of(phrases),
            controls=stop,
            reuse=rewrite.refs,
        )
        if rewrite.answer:  # the model's own whitespace joins the continuation to it
            reply.add_answer(rewrite.answer)
        stored = rewrite.question or user  # continuing: the stored turn is the whole answer's
        started = self.clock.now()
        self.metrics.active_streams.inc()
        try:
            await reply.start()
            if lease.previous_lost:
                reply.add_notice(phrases.previous_lost)
            try:
                generation = await self._generate(
                    fitted, limits, reply, lease, history, user, affinity, brief
                )
            except BaseException:
                await reply.cancel()
                raise
            result = await self._conclude(
                key,
                stored,
                fitted,
                reply,
                generation,
                replace=replace,
                fence=lease.fence,
                phrases=phrases,
                record=record,
            )
            if record is not None:
                await self._end(record, reply, result, generation)
        finally:
            self.metrics.active_streams.dec()
        self._observe(reply, generation, started)
        return result

    async def _begin(self, key: ConversationKey, owner: str, question: str) -> AnswerRecord | None:
        """Record the answer about to stream, so its buttons find it; None: no buttons."""
        if self.answers is None or not owner:
            return None
        record = AnswerRecord(secrets.token_hex(8), key, owner, question, wall_time())
        try:
            await self.answers.begin(record)
        except StoreError as exc:
            log.warning("answer of %s goes without buttons: %s", key, exc)
            return None
        return record

    async def _end(
        self,
        record: AnswerRecord,
        reply: ReplyStream,
        result: TurnResult,
        generation: _Generation,
    ) -> None:
        """Keep which messages show the answer and whether it can be regenerated or continued."""
        assert self.answers is not None
        continuable = result.saved and generation.finish_reason == "length"
        try:
            await self.answers.end(
                record.ended(reply.refs, saved=result.saved, continuable=continuable)
            )
        except StoreError as exc:
            log.warning("could not record the end of answer %s: %s", record.id, exc)

    def _fit(
        self, history: Sequence[StoredMessage], user: StoredMessage, budget: int, instructions: str
    ) -> FittedPrompt:
        """Fit history with every layer of instructions folded into the first user turn."""
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
        affinity: str,
        brief: Brief,
    ) -> _Generation:
        """Stream the answer into ``reply``; one re-fitted retry if vLLM still says 400.

        The 400 names the server's real context length (LLM_CONTEXT_TOKENS set too high, or vLLM
        restarted with a smaller --max-model-len): the retry is fitted to that, and the client
        keeps it for later turns. Without it, the retry is trimmed by a quarter more.
        """
        for attempt in range(2):
            room = limits.context_tokens - fitted.prompt_tokens
            params = SamplingParams(
                temperature=_first(brief.temperature, self.settings.llm_temperature),
                top_p=_first(brief.top_p, self.settings.llm_top_p),
                max_tokens=max(16, min(limits.reply_tokens, room)),
                model=brief.model or "",
            )
            events = self.llm.stream(fitted.messages, params, affinity=affinity)
            generation = await self._pump(events, reply, lease)
            error = generation.error
            if isinstance(error, ContextTooLong) and attempt == 0 and not reply.has_output:
                overshoot = (error.prompt_tokens or 0) - fitted.prompt_tokens
                if error.limit:  # the server's real context, less what we under-counted
                    context = min(error.limit, limits.context_tokens)
                    limits = self._limits_for(context, brief.max_tokens)
                    budget = limits.prompt_budget - max(overshoot, 0)
                else:
                    budget = limits.prompt_budget - max(overshoot, limits.prompt_budget // 4)
                log.warning("context too long (%s); re-fitting to %d tokens", error, budget)
                try:
                    fitted = self._fit(history, user, budget, brief.instructions)
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
        fence: str | None = None,
        phrases: Phrases,
        record: AnswerRecord | None = None,
    ) -> TurnResult:
        """Finish the visible reply, then save the turn only if it is whole (or stopped).

        The final write carries the buttons a stored answer gets (Regenerate, and Continue when
        the token limit cut it); a save that then fails takes them away with its notice.
        """
        error = generation.error
        if error is not None:
            log.warning("model failure in %s: %s", key, error)
            reply.add_notice(phrases.error(error))
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
        if record is not None and reply.answer:
            buttons = [Button(Control.REGENERATE, phrases.regenerate_button)]
            if generation.finish_reason == "length":
                buttons.append(Button(Control.CONTINUE, phrases.continue_button))
            reply.end_with(Controls(record.id, tuple(buttons)))
        await reply.finish()

        answer = reply.answer
        if not answer:
            return TurnResult(outcome, "", dropped_turns=fitted.dropped_turns)
        stored = StoredMessage(
            Role.ASSISTANT, answer, self.counter.count(assistant_visible(answer)), wall_time()
        )
        saved = await self._save(
            key, Turn(user, stored), reply, replace=replace, fence=fence, phrases=phrases
        )
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
        self,
        key: ConversationKey,
        turn: Turn,
        reply: ReplyStream,
        *,
        replace: bool,
        fence: str | None = None,
        phrases: Phrases,
    ) -> bool:
        """Store the turn atomically, retrying through a Redis blip; if that fails, say so.

        Retrying is safe: the store saves a turn at most once (by ``Turn.id``), so an attempt
        that was applied but whose reply was lost is not stored twice by the next one. A save
        fenced out (another turn holds the lease now) is final: LeaseLost is never retried.
        """
        save = self.store.replace_last if replace else self.store.append
        try:
            await self.retry.run(
                lambda: save(key, turn, fence=fence),
                retry_on=(StoreError,),
                what=f"saving a turn of {key}",
                advice=lambda exc: None if isinstance(exc, LeaseLost) else 0.0,
            )
            return True
        except LeaseLost as exc:
            log.warning("did not save a turn of %s: %s", key, exc)
        except StoreError as exc:
            log.error("could not save a turn of %s: %s", key, exc)
        reply.add_notice(phrases.not_saved)
        reply.end_with(NO_CONTROLS)
        await reply.finish()
        return False

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


def _first(override: float | None, default: float) -> float:
    """A persona's value when it sets one (0.0 included), else the configured default."""
    return default if override is None else override
