"""Telegram update → what Parley should do with it: a pure function, so every rule is testable.

Private chats: every text message (captions count). Groups: only when the bot is mentioned,
replied to, or sent a command addressed to it. An edited text is handed on as an edit (the
core decides whether it re-asks the newest question). Other bots and service messages are
ignored. Forum topics are separate conversations and replies go back into the topic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import StrEnum

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType

from bots.telegram.commands import parse_command
from bots.telegram.settings import GroupScope
from bots.telegram.sink import ReplyTarget
from core.conversation import ConversationKey, IncomingMessage

PLATFORM = "telegram"
SHARED_USER = ""  # the `user` of a group conversation shared by everyone (GROUP_SCOPE=chat)


class Action(StrEnum):
    """What to do with an update."""

    IGNORE = "ignore"
    CHAT = "chat"  # answer with the model
    COMMAND = "command"
    UNSUPPORTED = "unsupported"  # media the bot cannot read, sent to it
    CALLBACK = "callback"  # an inline button was pressed
    EDIT = "edit"  # the person edited a text they had sent
    INLINE_QUERY = "inline_query"  # `@bot question` being typed in some chat
    INLINE_CHOSEN = "inline_chosen"  # the person sent the "Ask Parley" result


@dataclass(frozen=True, slots=True)
class Me:
    """The bot's own identity, from getMe."""

    id: int
    username: str
    name: str = "Parley"


@dataclass(frozen=True, slots=True)
class Routed:
    """The decision for one update, with everything the handlers need."""

    action: Action
    reason: str = ""  # why an update is ignored, for debug logs
    message: IncomingMessage | None = None
    target: ReplyTarget | None = None
    command: str = ""
    args: str = ""
    data: str = ""  # callback data
    user_id: str = ""
    chat_id: int = 0
    group: bool = False  # a group or supergroup, not the private chat with the bot
    language: str = ""  # the sender's Telegram language_code ("zh-hans", "en", …)
    version: str = ""  # an edit: when it was made (Telegram's edit_date), one per version


def ignore(reason: str) -> Routed:
    """An update Parley does not act on."""
    return Routed(Action.IGNORE, reason=reason)


def route(update: Update, me: Me, *, scope: GroupScope) -> Routed:
    """Decide what an update means for Parley."""
    if update.callback_query is not None:
        query = update.callback_query
        chat_id = query.message.chat.id if query.message is not None else query.from_user.id
        group = query.message is not None and query.message.chat.type != ChatType.PRIVATE
        return Routed(
            Action.CALLBACK,
            data=query.data or "",
            user_id=str(query.from_user.id),
            chat_id=chat_id,
            group=group,
            language=query.from_user.language_code or "",
        )
    inline = _inline(update)
    if inline is not None:
        return inline
    edited = update.edited_message
    message = update.message or edited
    if message is None:
        return ignore("not a message (channel post, membership…)")
    user = message.from_user
    if user is None or user.is_bot:
        return ignore("sent by a bot or on behalf of a channel")
    chat = message.chat
    if chat.type not in (ChatType.PRIVATE, ChatType.GROUP, ChatType.SUPERGROUP):
        return ignore(f"chat type {chat.type}")
    private = chat.type == ChatType.PRIVATE
    thread = message.message_thread_id if chat.is_forum and message.is_topic_message else None
    target = ReplyTarget(
        chat.id, private, thread_id=thread, reply_to=None if private else message.message_id
    )
    text = message.text if message.text is not None else message.caption
    base = Routed(
        Action.IGNORE,
        target=target,
        user_id=str(user.id),
        chat_id=chat.id,
        group=not private,
        language=user.language_code or "",
    )

    if edited is not None:
        return _edit(message, me, base, text, scope)
    if text is not None and text.startswith("/"):
        command, addressee, args = _command(message, text)
        if command:
            if addressee and addressee.lower() != me.username.lower():
                return ignore("a command for another bot")
            if addressee or private or parse_command(command) is not None:
                return replace(base, action=Action.COMMAND, command=command, args=args)
            return ignore("an unaddressed command Parley does not know")

    addressed = private or _replies_to_me(message, me) or _mentions_me(message, me)
    if text is None:
        if message.effective_attachment is None:
            return ignore("a service message")
        if not addressed:
            return ignore("media not addressed to the bot")
        return replace(base, action=Action.UNSUPPORTED)
    if not addressed:
        return ignore("a group message not addressed to the bot")

    return replace(base, action=Action.CHAT, message=_incoming(message, me, base, text, scope))


def _inline(update: Update) -> Routed | None:
    """An inline query, or the inline message a person sent from its result; None: neither."""
    if update.inline_query is not None:
        sender = update.inline_query.from_user
        action, data = Action.INLINE_QUERY, update.inline_query.query
    elif update.chosen_inline_result is not None:
        chosen = update.chosen_inline_result
        if chosen.inline_message_id is None:
            return ignore("a chosen inline result without an inline message to edit")
        sender, action, data = chosen.from_user, Action.INLINE_CHOSEN, chosen.query
    else:
        return None
    if sender.is_bot:
        return ignore("an inline query from a bot")
    return Routed(
        action,
        data=data,
        user_id=str(sender.id),
        chat_id=sender.id,
        language=sender.language_code or "",
    )


def _incoming(
    message: Message, me: Me, base: Routed, text: str, scope: GroupScope
) -> IncomingMessage:
    """The message as the core takes it: its conversation and its text without @bot."""
    target = base.target
    assert target is not None
    assert message.from_user is not None
    private = target.private
    key = ConversationKey(
        PLATFORM,
        str(target.chat_id),
        SHARED_USER if not private and scope is GroupScope.CHAT else base.user_id,
        str(target.thread_id) if target.thread_id is not None else "",
    )
    return IncomingMessage(
        key=key,
        text=text if private else _without_mentions(message, me),
        user_id=base.user_id,
        display_name=message.from_user.full_name,
        message_id=str(message.message_id),
        group=not private,
        language=base.language,
    )


def _edit(message: Message, me: Me, base: Routed, text: str | None, scope: GroupScope) -> Routed:
    """An edited text: handed on (the core re-asks it only if it is the newest question)."""
    if text is None or text.startswith("/"):
        return ignore("an edited command or media")
    target = base.target
    assert target is not None
    if not (target.private or _replies_to_me(message, me) or _mentions_me(message, me)):
        return ignore("an edited group message not addressed to the bot")
    stamp = message.edit_date.timestamp() if message.edit_date is not None else 0.0
    digest = hashlib.blake2s(text.encode(), digest_size=6).hexdigest()  # two edits in a second
    return replace(
        base,
        action=Action.EDIT,
        message=_incoming(message, me, base, text, scope),
        version=f"{stamp:.0f}:{digest}",
    )


def conversation_key(routed: Routed, *, scope: GroupScope) -> ConversationKey:
    """The conversation a command acts on: the sender's (or the group's shared one) here."""
    target = routed.target
    assert target is not None
    shared = not target.private and scope is GroupScope.CHAT
    return ConversationKey(
        PLATFORM,
        str(target.chat_id),
        SHARED_USER if shared else routed.user_id,
        str(target.thread_id) if target.thread_id is not None else "",
    )


def _command(message: Message, text: str) -> tuple[str, str, str]:
    """`/cmd@bot args` → (cmd, bot, args); empty command if the text is not a bot command."""
    entities = message.entities if message.text is not None else message.caption_entities
    first = entities[0] if entities else None
    if first is None or first.type != MessageEntity.BOT_COMMAND or first.offset != 0:
        return "", "", ""
    head = (
        message.parse_entity(first)
        if message.text is not None
        else message.parse_caption_entity(first)
    )
    name, _, addressee = head[1:].partition("@")
    return name.lower(), addressee, text[len(head) :].strip()


def _replies_to_me(message: Message, me: Me) -> bool:
    """A reply to one of the bot's messages (not the topic header every topic message has)."""
    replied = message.reply_to_message
    return (
        replied is not None
        and replied.forum_topic_created is None
        and replied.from_user is not None
        and replied.from_user.id == me.id
    )


def _my_mentions(message: Message, me: Me) -> list[MessageEntity]:
    """@bot mentions (by username) and text mentions of the bot."""
    handle = f"@{me.username}".lower()
    parsed = (
        message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION])
        if message.text is not None
        else message.parse_caption_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION])
    )
    return [
        entity
        for entity, text in parsed.items()
        if (entity.type == MessageEntity.MENTION and text.lower() == handle)
        or (entity.user is not None and entity.user.id == me.id)
    ]


def _mentions_me(message: Message, me: Me) -> bool:
    return bool(_my_mentions(message, me))


def _without_mentions(message: Message, me: Me) -> str:
    """The text with the bot's @mentions taken out (they address the bot, not the model)."""
    text = message.text if message.text is not None else message.caption or ""
    units = text.encode("utf-16-le")
    for entity in sorted(_my_mentions(message, me), key=lambda e: e.offset, reverse=True):
        if entity.type == MessageEntity.MENTION:
            units = units[: entity.offset * 2] + units[(entity.offset + entity.length) * 2 :]
    return units.decode("utf-16-le").strip()
