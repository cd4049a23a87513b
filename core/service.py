"""ChatService: one message in, one streamed and remembered answer out, whatever goes wrong."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

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
from core.phrases import Phrases
from core.settings import BusyPolicy, CoreSettings
from core.sink import MessageSink, Segment, SegmentKind
from core.store.protocol import ConversationStore
from core.stream.reply import ReplyStream
from core.text import clean_user_text
from core.tokens import TokenCounter, assistant_visible
from core.turns import TurnBusy, TurnCoordinator, TurnLease

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
    _limits: ServiceLimits | None = None

    # -- public API -------------------------------------------------------------------------

    async def handle(self, message: IncomingMessage, sink: MessageSink) -> TurnResult:
        """Answer one message; problems are told to the user through ``sink``, never raised."""
        text = clean_user_text(message.text)
        if not text:
            await _say(sink, self.phrases.empty_message)
            return TurnResult(Outcome.REFUSED)
        policy = self.settings.busy_policy
        try:
            if policy is BusyPolicy.REJECT and await self.turns.busy(message.key):
                return await self._busy(sink)
            if policy is BusyPolicy.INTERRUPT:
                await self.turns.signal_stop(message.key, "interrupted")
            async with self.turns.turn(message.key, wait=policy is not BusyPolicy.REJECT) as lease:
                history = await self.store.load(message.key)
                return await self._run(message.key, text, history, sink, lease, replace=False)
        except TurnBusy:
            return await self._busy(sink)
        except StoreError as exc:
            log.error("store failure for %s: %s", message.key, exc)
            await _say(sink, exc.user_message)
            return TurnResult(Outcome.FAILED, error=exc)

    async def retry(self, key: ConversationKey, sink: MessageSink, *, user_id: str) -> TurnResult:
        """Answer the last user message again; the new answer replaces the old one."""
        try:
            async with self.turns.turn(key, wait=True) as lease:
                history = await self.store.load(key)
                if len(history) < 2 or history[-2].role is not Role.USER:
                    await _say(sink, self.phrases.nothing_to_retry)
                    return TurnResult(Outcome.REFUSED)
                text = history[-2].content
                return await self._run(key, text, history[:-2], sink, lease, replace=True)
        except StoreError as exc:
            log.error("store failure for %s: %s", key, exc)
            await _say(sink, exc.user_message)
            return TurnResult(Outcome.FAILED, error=exc)

    async def stop(self, key: ConversationKey) -> bool:
        """Stop the reply running in this conversation, wherever it runs; keeps what was shown."""
        return await self.turns.signal_stop(key, "stopped")

    async def reset(self, key: ConversationKey) -> bool:
        """Forget one conversation."""
        return await self.store.clear(key)

    async def reset_user(self, platform: str, user: str) -> int:
        """Forget all of a user's conversations on a platform."""
        return await self.store.clear_user(platform, user)

    async def reset_chat(self, platform: str, chat: str) -> int:
        """Forget every conversation in a chat or channel."""
        return await self.store.clear_chat(platform, chat)

    async def reset_all(self) -> int:
        """Forget everything."""
        return await self.store.clear_all()

    async def stats(self) -> StoreStats:
        """What the store holds."""
        return await self.store.stats()

    async def limits(self) -> ServiceLimits:
        """The context budget, from LLM_CONTEXT_TOKENS or the server's max_model_len."""
        if self._limits is None:
            context = self.settings.llm_context_tokens
            if context is None:
                info = await self.llm.model_info()
                context = info.max_model_len or 4096
            reply = min(self.settings.llm_max_tokens, context // 2)
            if reply < self.settings.llm_max_tokens:
                log.warning(
                    "LLM_MAX_TOKENS=%d leaves no room in a %d-token context; using %d",
                    self.settings.llm_max_tokens,
                    context,
                    reply,
                )
            self._limits = ServiceLimits(context, reply)
        return self._limits

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

        reply = ReplyStream(
            sink, show_reasoning=self.settings.show_reasoning, clock=self.clock
        )
        await reply.start()
        try:
            generation = await self._generate(fitted, limits, reply, lease, history, user)
        except BaseException:
            await reply.cancel()
            raise
        return await self._conclude(key, user, fitted, reply, generation, replace=replace)

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
            usage_prompt=generation.prompt_tokens,
            usage_completion=generation.completion_tokens,
        )

    async def _save(
        self, key: ConversationKey, turn: Turn, reply: ReplyStream, *, replace: bool
    ) -> bool:
        """Store the turn atomically; if Redis fails now, say so rather than pretend."""
        try:
            if replace:
                await self.store.replace_last(key, turn)
            else:
                await self.store.append(key, turn)
        except StoreError as exc:
            log.error("could not save a turn of %s: %s", key, exc)
            reply.add_notice(self.phrases.not_saved)
            await reply.finish()
            return False
        return True


async def _say(sink: MessageSink, text: str) -> None:
    """Send a short note from Parley; a platform failure here is only logged."""
    try:
        await sink.pacer.acquire()
        await sink.send((Segment(SegmentKind.NOTICE, text),), final=True)
    except BotError as exc:
        log.warning("could not tell the user: %s", exc)
