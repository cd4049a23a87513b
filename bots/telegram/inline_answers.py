"""Inline queries → the "Ask Parley" result; a chosen result → a turn streamed into its message.

The turn goes through the core's one admission like any message: a refusal (access, quota,
busy) is written into the inline message itself. An answer longer than the inline message is
then sent whole to the person's private chat with the bot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from telegram import Bot, ChosenInlineResult, InlineQuery
from telegram.error import TelegramError

from bots.telegram.errors import translate
from bots.telegram.inline import (
    InlineSink,
    chosen_in_private,
    inline_key,
    pace_key,
    question_of,
    results,
)
from bots.telegram.pacing import Pacers
from bots.telegram.sink import ReplyTarget, telegram_limits
from core.commands import Caller, TurnRequest
from core.errors import BotError
from core.phrases import Phrases
from core.results import TurnResult
from core.service import ChatService
from core.settings import ShowReasoning
from core.sink import MessageSink, Segment, SegmentKind
from core.stream.reply import ReplyStream, ReplyTexts

log = logging.getLogger(__name__)


class InlineAnswers:
    """Telegram inline mode for one bot: offers the result, answers the inline message."""

    def __init__(
        self,
        *,
        bot: Bot,
        service: ChatService,
        pacers: Pacers,
        private: Callable[[ReplyTarget], MessageSink],
    ) -> None:
        self._bot = bot
        self._service = service
        self._pacers = pacers
        self._private = private  # the sink of a private chat, as the bot's replies use

    async def offer(self, query: InlineQuery, caller: Caller) -> None:
        """One personal, uncached result: who asks decides whose answer it becomes."""
        phrases = await self._service.phrases_for(caller)
        try:
            await self._bot.answer_inline_query(
                query.id,
                results(query.query, phrases, query.chat_type),
                cache_time=0,
                is_personal=True,
            )
        except TelegramError as exc:  # too late (10 s) or refused: the person types on
            log.warning("could not answer an inline query: %s", translate(exc))

    async def answer(self, chosen: ChosenInlineResult, caller: Caller) -> TurnResult:
        """Stream the answer into the inline message; a long one also goes whole to private."""
        inline_id = chosen.inline_message_id
        assert inline_id is not None  # routed only with one
        question = question_of(chosen.query)
        phrases = await self._service.phrases_for(caller)
        private = chosen_in_private(chosen.result_id)
        sink = InlineSink(
            self._bot,
            inline_id,
            question=question,
            phrases=phrases,
            pacer=self._pacers.for_chat(pace_key(inline_id), private=private),
            limits=telegram_limits(self._pacers.interval(private=private)),
        )
        request = TurnRequest(inline_key(caller.user_id, inline_id), caller, text=question)
        result = await self._service.submit(request, sink)
        whole = not sink.overflowed or not result.answer
        if not whole and not await self._whole(caller, question, result.answer, phrases):
            try:
                await sink.never_started()
            except BotError as exc:
                log.warning("could not add the note to an inline answer: %s", exc)
        return result

    async def _whole(self, caller: Caller, question: str, answer: str, phrases: Phrases) -> bool:
        """The whole answer in the person's private chat; False if the bot may not write there."""
        sink = self._private(ReplyTarget(int(caller.user_id), True))
        intro = phrases.inline_whole.format(question=question)
        try:
            await sink.pacer.acquire()
            await sink.send((Segment(SegmentKind.NOTICE, intro),), final=True)
        except BotError as exc:  # never started the bot, or blocked it
            log.info("no private chat for a whole inline answer: %s", exc)
            return False
        reply = ReplyStream(sink, show_reasoning=ShowReasoning.OFF, texts=ReplyTexts.of(phrases))
        reply.add_answer(answer)
        await reply.start()
        await reply.finish()
        return True
