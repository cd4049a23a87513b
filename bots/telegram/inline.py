"""Telegram inline mode: `@bot question` in any chat, answered by editing the inline message.

Telegram gives the bot no message of its own in that chat, only the inline message the user
picked (``inline_message_id``, and only for a result with an inline keyboard: ⏹ Stop is it).
Every write is an edit of that one message, so a reply longer than it ends there with a note,
and the whole answer goes to the person's private chat with the bot.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets

from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    LinkPreviewOptions,
)

from bots.telegram.inbound import PLATFORM
from bots.telegram.render import GrowingMarkdown
from bots.telegram.sink import Payload, deliver, edit_text, payloads
from core.conversation import ConversationKey
from core.phrases import Phrases
from core.sink import (
    NO_CONTROLS,
    Content,
    Control,
    Controls,
    MessageRef,
    Pacer,
    Segment,
    SegmentKind,
    SinkLimits,
    measure,
)

log = logging.getLogger(__name__)

INLINE_CHAT = "inline"  # the `chat` of every inline conversation; its thread is the message
MAX_QUERY = 256  # characters Telegram allows in an inline query
# Callback data of the Stop button a result is posted with: no answer exists yet, so a press
# before the answer starts finds none and is told so; the first edit puts the real Stop there.
PENDING_STOP = f"ac|{Control.STOP.value}|-"
_PRIVATE, _GROUP = "p", "g"  # first letter of a result id: where the inline query was typed
# Pacing keys of inline messages: below every real chat id (supergroups are about -1.9e12).
_INLINE_PACE_BASE = -(10**15)


def inline_key(user_id: str, inline_message_id: str) -> ConversationKey:
    """One-shot: every inline message is a conversation of its own, so no history is loaded."""
    return ConversationKey(PLATFORM, INLINE_CHAT, user_id, inline_message_id)


def result_id(chat_type: str | None) -> str:
    """A fresh result id (≤ 64 bytes) that remembers whether the query came from a private chat,
    so the chosen result's edits are paced by the right flood rule."""
    private = chat_type in ("sender", "private")
    return (_PRIVATE if private else _GROUP) + secrets.token_hex(8)


def chosen_in_private(result: str) -> bool:
    """Whether the inline message went to a private chat (unknown counts as a group)."""
    return result.startswith(_PRIVATE)


def pace_key(inline_message_id: str) -> int:
    """The budget key of one inline message (Telegram does not say which chat it is in)."""
    digest = hashlib.blake2s(inline_message_id.encode(), digest_size=6).digest()
    return _INLINE_PACE_BASE - int.from_bytes(digest, "big")


def question_of(query: str) -> str:
    """The inline query as the question (Telegram caps it; the check keeps that promise)."""
    return query.strip()[:MAX_QUERY]


def header(question: str, phrases: Phrases) -> Segment:
    """The question on top of the inline message: the chat sees what was asked."""
    return Segment(SegmentKind.NOTICE, phrases.inline_question.format(question=question))


def results(query: str, phrases: Phrases, chat_type: str | None) -> list[InlineQueryResultArticle]:
    """The one "Ask Parley" result; an empty query offers none."""
    question = question_of(query)
    if not question:
        return []
    content = (header(question, phrases), Segment(SegmentKind.STATUS, phrases.thinking_start))
    text, entities = payloads(content)[0]
    stop = InlineKeyboardButton(phrases.stop_button, callback_data=PENDING_STOP)
    return [
        InlineQueryResultArticle(
            result_id(chat_type),
            phrases.inline_title,
            InputTextMessageContent(
                text,
                entities=list(entities) or None,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            ),
            reply_markup=InlineKeyboardMarkup([[stop]]),
            description=question,
        )
    ]


class InlineSink:
    """The MessageSink of one inline message: every send and edit rewrites that message.

    The reply stream rolls a long reply over into more messages; here they cannot be sent, so
    the inline message keeps its first part with a note under it (``overflowed``) and the
    caller delivers the whole answer elsewhere. Only ⏹ Stop is drawn: Regenerate and Continue
    re-ask a question the inline message's chat cannot answer back into.
    """

    def __init__(
        self,
        bot: Bot,
        inline_message_id: str,
        *,
        question: str,
        phrases: Phrases,
        pacer: Pacer,
        limits: SinkLimits,
    ) -> None:
        self._bot = bot
        self._id = inline_message_id
        self._top = header(question, phrases)
        self._phrases = phrases
        self._pacer = pacer
        notes = max(
            measure(phrases.inline_more, limits.unit), measure(phrases.inline_start, limits.unit)
        )
        room = limits.max_length - measure(self._top.text, limits.unit) - notes - 4
        self._limits = dataclasses.replace(limits, max_length=max(16, room))
        self._body: Content = ()
        self._controls = NO_CONTROLS
        self._messages = 0  # messages the reply stream believes it sent
        self._note = ""
        self._shown: tuple[Payload, Controls] | None = None
        self._answer = GrowingMarkdown()  # each edit renders only what the answer added

    @property
    def limits(self) -> SinkLimits:
        """Telegram's rules, less the room the question and the note take."""
        return self._limits

    @property
    def pacer(self) -> Pacer:
        """The inline message's own budget."""
        return self._pacer

    @property
    def overflowed(self) -> bool:
        """Whether the reply needed more than the inline message (the note says where it is)."""
        return self._messages > 1

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """The first message is the inline message; later ones only move the note and buttons."""
        self._messages += 1
        self._controls = _stop_only(controls)
        if self._messages == 1:
            self._body = content
            await self._show()
            return self._id
        self._note = self._note or self._phrases.inline_more
        await self._show()
        return f"{self._id}#{self._messages}"

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """The inline message's part, or the buttons of a part that only exists in the stream."""
        if ref == self._id:
            self._body = content
            if not self.overflowed:
                self._controls = _stop_only(controls)
        else:
            self._controls = _stop_only(controls)
        await self._show()

    async def typing(self) -> None:
        """No chat to show "typing…" in: the thinking status is the progress."""

    async def never_started(self) -> None:
        """The private chat could not take the whole answer: tell the person to start it."""
        self._note = self._phrases.inline_start
        await self._pacer.acquire()
        await self._show()

    async def _show(self) -> None:
        """Write the inline message as it should look now; an unchanged one costs nothing."""
        content = (self._top, *self._body)
        if self._note:
            content = (*content, Segment(SegmentKind.NOTICE, self._note))

        async def call(payload: Payload) -> None:
            if self._shown == (payload, self._controls):
                return
            await edit_text(self._bot, payload, self._controls, inline_message_id=self._id)
            self._shown = (payload, self._controls)

        await deliver(content, call, self._answer)


def _stop_only(controls: Controls) -> Controls:
    """The buttons an inline message carries: Stop while streaming, none afterwards."""
    stop = tuple(b for b in controls.buttons if b.control is Control.STOP)
    return Controls(controls.answer, stop) if stop else NO_CONTROLS
