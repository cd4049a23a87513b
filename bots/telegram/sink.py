"""MessageSink over python-telegram-bot: sends and edits one reply, or streams it as a draft.

The sink renders content to entities, falls back to plain text when Telegram rejects the
formatting, turns an unchanged edit into a no-op and translates every Telegram error into
``core.errors``. It never sleeps or retries on a 429: the core's reply stream owns pacing.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from telegram import Bot, LinkPreviewOptions, MessageEntity, ReplyParameters
from telegram.constants import ChatAction
from telegram.error import TelegramError

from bots.telegram.controls import control_buttons
from bots.telegram.errors import is_not_modified, translate
from bots.telegram.render import Entity, GrowingMarkdown, Rendered, markdown, render
from core.errors import MessageGone, MessageRejected, PlatformError, RateLimited
from core.sink import (
    NO_CONTROLS,
    Content,
    Controls,
    LengthUnit,
    MessageRef,
    Pacer,
    Segment,
    SinkLimits,
    measure,
    plain,
)

log = logging.getLogger(__name__)

MAX_MESSAGE_UTF16 = 4096  # Telegram's limit after entity parsing
# What the reply stream may put in one message: rendering can grow Markdown a little
# (heading symbols, rules, table padding), and the sink falls back to plain text if it must.
DECLARED_MAX_UTF16 = 4000

T = TypeVar("T")
Payload = tuple[str, tuple[MessageEntity, ...]]


def telegram_limits(min_interval: float) -> SinkLimits:
    """Telegram's rules as the reply stream needs them."""
    return SinkLimits(
        max_length=DECLARED_MAX_UTF16,
        unit=LengthUnit.UTF16,
        min_interval=min_interval,
        supports_collapsed=True,
    )


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where a reply goes: a chat, a forum topic in it, and the message being answered."""

    chat_id: int
    private: bool
    thread_id: int | None = None
    reply_to: int | None = None


def payloads(
    content: Sequence[Segment], answer: Callable[[str], Rendered] = markdown
) -> list[Payload]:
    """What to try, in order: the formatted message, then the same content as plain text."""
    rendered: Rendered = render(content, answer)
    options: list[Payload] = []
    if rendered.text and rendered.length <= MAX_MESSAGE_UTF16:
        entities = tuple(_message_entity(e) for e in rendered.entities)
        options.append((rendered.text, entities))
    fallback = plain(content).strip()
    fits = bool(fallback) and measure(fallback, LengthUnit.UTF16) <= MAX_MESSAGE_UTF16
    if fits and (fallback, ()) not in options:
        options.append((fallback, ()))
    if not options:
        size = measure(plain(content), LengthUnit.UTF16)
        raise MessageRejected(
            "empty message" if not size else f"{size} UTF-16 units is over Telegram's limit"
        )
    return options


@functools.lru_cache(maxsize=16_384)
def _message_entity(entity: Entity) -> MessageEntity:
    """python-telegram-bot's (immutable) entity: an edit repeats most of the last one's, and
    building one costs more than rendering its text."""
    return MessageEntity(
        entity.type, entity.offset, entity.length, url=entity.url, language=entity.language
    )


async def deliver(
    content: Sequence[Segment],
    call: Callable[[Payload], Awaitable[T]],
    answer: Callable[[str], Rendered] = markdown,
) -> T:
    """Run ``call`` with the formatted payload; if Telegram rejects it, with plain text."""
    options = payloads(content, answer)
    for index, payload in enumerate(options):
        try:
            return await call(payload)
        except TelegramError as exc:
            error = translate(exc)
            if isinstance(error, MessageRejected) and index + 1 < len(options):
                log.info("Telegram rejected the formatting (%s); sending plain text", exc)
                continue
            raise error from exc
    raise AssertionError("unreachable: payloads() is never empty")


async def edit_text(
    bot: Bot,
    payload: Payload,
    controls: Controls,
    *,
    chat_id: int | None = None,
    message_id: int | None = None,
    inline_message_id: str | None = None,
) -> None:
    """editMessageText with the reply's buttons (none removes them); "not modified" is fine."""
    try:
        await bot.edit_message_text(
            payload[0],
            chat_id=chat_id,
            message_id=message_id,
            inline_message_id=inline_message_id,
            entities=payload[1] or None,
            reply_markup=control_buttons(controls),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )
    except TelegramError as exc:
        if not is_not_modified(exc):
            raise


class EditSink:
    """Streams a reply by sending a message and editing it (any chat type)."""

    def __init__(self, bot: Bot, target: ReplyTarget, *, pacer: Pacer, limits: SinkLimits):
        self._bot = bot
        self._target = target
        self._pacer = pacer
        self._limits = limits
        self._shown: dict[MessageRef, tuple[Payload, Controls]] = {}
        self._answered = False  # only the first message of a reply quotes the question
        self._answer = GrowingMarkdown()  # each edit renders only what the answer added

    @property
    def limits(self) -> SinkLimits:
        """Telegram's rules for this chat."""
        return self._limits

    @property
    def pacer(self) -> Pacer:
        """The chat's shared budget."""
        return self._pacer

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """Post a new message; in groups the first one replies to the user's message."""
        target = self._target
        reply = None
        if target.reply_to is not None and not self._answered:
            reply = ReplyParameters(target.reply_to, allow_sending_without_reply=True)

        async def call(payload: Payload) -> MessageRef:
            message = await self._bot.send_message(
                target.chat_id,
                payload[0],
                entities=payload[1] or None,
                message_thread_id=target.thread_id,
                reply_parameters=reply,
                reply_markup=control_buttons(controls),
                link_preview_options=LinkPreviewOptions(is_disabled=True),
            )
            ref = str(message.message_id)
            self._shown[ref] = (payload, controls)
            return ref

        ref = await deliver(content, call, self._answer)
        self._answered = True
        return ref

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """Replace a message's content and buttons; unchanged costs no request and is no error.

        Telegram drops the inline keyboard of an edit that carries none: that removes Stop.
        """

        async def call(payload: Payload) -> None:
            if self._shown.get(ref) == (payload, controls):
                return
            await edit_text(
                self._bot, payload, controls, chat_id=self._target.chat_id, message_id=int(ref)
            )
            self._shown[ref] = (payload, controls)

        await deliver(content, call, self._answer)

    async def typing(self) -> None:
        """ "typing…" in the chat (or topic) for the next few seconds."""
        try:
            await self._bot.send_chat_action(
                self._target.chat_id, ChatAction.TYPING, message_thread_id=self._target.thread_id
            )
        except TelegramError as exc:
            raise translate(exc) from exc


class DraftSink:
    """Private chats with TELEGRAM_STREAM_MODE=draft: a native draft while streaming, then a
    real message when the text is final. Anything but a draft call goes to ``messages``.

    If Telegram refuses drafts for this chat, the rest of the reply falls back to editing.
    """

    def __init__(self, bot: Bot, target: ReplyTarget, *, messages: EditSink):
        self._bot = bot
        self._target = target
        self._messages = messages
        self._drafts: dict[MessageRef, int] = {}  # open drafts
        self._landed: dict[MessageRef, MessageRef] = {}  # draft → the message that replaced it
        self._shown: dict[int, Payload] = {}
        self._refused = False
        self._answer = GrowingMarkdown()  # each draft renders only what the answer added

    @property
    def limits(self) -> SinkLimits:
        """Messages' rules; a draft lands as a real message only on a final write."""
        return dataclasses.replace(self._messages.limits, needs_final=True)

    @property
    def pacer(self) -> Pacer:
        """Drafts spend the chat's budget too."""
        return self._messages.pacer

    async def send(
        self, content: Content, *, final: bool = False, controls: Controls = NO_CONTROLS
    ) -> MessageRef:
        """Final content becomes a message at once; anything else opens a draft (drafts carry
        no buttons: Stop shows once the text lands as a message)."""
        if final or self._refused:
            return await self._messages.send(content, final=final, controls=controls)
        draft_id = secrets.randbelow(2**31 - 2) + 1  # non-zero, unique per reply in practice
        if not await self._draft(draft_id, content):
            return await self._messages.send(content, final=final, controls=controls)
        ref = f"draft:{draft_id}"
        self._drafts[ref] = draft_id
        return ref

    async def edit(
        self,
        ref: MessageRef,
        content: Content,
        *,
        final: bool = False,
        controls: Controls = NO_CONTROLS,
    ) -> None:
        """Update the draft; when final (or drafts are refused), land it as a real message."""
        if ref in self._landed:
            await self._messages.edit(self._landed[ref], content, final=final, controls=controls)
            return
        draft_id = self._drafts.get(ref)
        if draft_id is None:
            if ref.startswith("draft:"):  # an earlier reply's draft: it never became a message
                raise MessageGone(f"{ref} is not a message")
            await self._messages.edit(ref, content, final=final, controls=controls)
            return
        if not final and not self._refused and await self._draft(draft_id, content):
            return
        self._landed[ref] = await self._messages.send(content, final=final, controls=controls)
        del self._drafts[ref]

    async def typing(self) -> None:
        """ "typing…" as in edit mode."""
        await self._messages.typing()

    async def _draft(self, draft_id: int, content: Content) -> bool:
        """Show ``content`` in the draft; False if Telegram refuses drafts here."""

        async def call(payload: Payload) -> None:
            if self._shown.get(draft_id) == payload:
                return
            await self._bot.send_message_draft(
                self._target.chat_id,
                draft_id,
                payload[0],
                message_thread_id=self._target.thread_id,
                entities=payload[1] or None,
            )
            self._shown[draft_id] = payload

        try:
            await deliver(content, call, self._answer)
        except (RateLimited, MessageRejected):
            raise
        except PlatformError as exc:
            log.warning("Telegram refused a draft (%s); editing messages instead", exc)
            self._refused = True
            return False
        return True
