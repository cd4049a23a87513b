"""Which Telegram updates Parley answers, and how they become IncomingMessages."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from telegram import Update

from bots.telegram.inbound import SHARED_USER, Action, Me, Routed, conversation_key, route
from bots.telegram.settings import GroupScope
from core.conversation import ConversationKey
from tests.fakes.fake_telegram import Chat, FakeMessage, FakeTelegram, User

ADMIN = 4242
_update_ids = itertools.count(1)


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram()  # never started: its chats and message builders are enough


@pytest.fixture
def alice(fake: FakeTelegram) -> User:
    return fake.new_user("Alice", username="alice")


def update(message: FakeMessage, *, edited: bool = False) -> dict[str, Any]:
    """The update Telegram sends for ``message``."""
    return {
        "update_id": next(_update_ids),
        "edited_message" if edited else "message": message.to_dict(),
    }


def says(fake: FakeTelegram, chat: Chat, user: User, text: str, **kw: Any) -> dict[str, Any]:
    """``user`` types ``text`` (Telegram detects @mentions and a leading /command)."""
    return update(fake.message(chat, user, text, **kw))


def mentions(fake: FakeTelegram, chat: Chat, user: User, text: str, **kw: Any) -> dict[str, Any]:
    return says(fake, chat, user, f"@{fake.bot.username} {text}", **kw)


def decide(fake: FakeTelegram, data: dict[str, Any], scope: GroupScope = GroupScope.USER) -> Routed:
    me = Me(fake.bot.id, fake.bot.username or "")
    parsed = Update.de_json(data, None)
    assert parsed is not None
    return route(parsed, me, scope=scope)


def test_private_text_is_answered_as_is(fake: FakeTelegram, alice: User) -> None:
    routed = decide(fake, says(fake, fake.private_chat(alice), alice, "  What is 2+2? 😀 "))
    assert routed.action is Action.CHAT
    assert routed.message is not None
    assert routed.message.text == "  What is 2+2? 😀 "
    assert routed.message.key == ConversationKey("telegram", str(alice.id), str(alice.id))
    assert routed.message.display_name == "Alice"
    assert routed.target is not None
    assert routed.target.private
    assert routed.target.reply_to is None


def test_private_caption_counts_as_text(fake: FakeTelegram, alice: User) -> None:
    chat = fake.private_chat(alice)
    routed = decide(fake, says(fake, chat, alice, "what is this?", kind="photo"))
    assert routed.action is Action.CHAT
    assert routed.message is not None
    assert routed.message.text == "what is this?"


@pytest.mark.parametrize("kind", ["sticker", "photo", "voice", "document"])
def test_private_media_without_text_is_unsupported(
    fake: FakeTelegram, alice: User, kind: str
) -> None:
    routed = decide(fake, says(fake, fake.private_chat(alice), alice, "", kind=kind))
    assert routed.action is Action.UNSUPPORTED


def test_group_messages_are_ignored_unless_addressed(fake: FakeTelegram, alice: User) -> None:
    group = fake.new_group()
    assert decide(fake, says(fake, group, alice, "hello all")).action is Action.IGNORE
    assert decide(fake, says(fake, group, alice, "", kind="sticker")).action is Action.IGNORE
    named = says(fake, group, alice, f"cc @{fake.bot.username}? no, @alice")
    assert decide(fake, named).action is Action.CHAT


def test_group_mention_is_stripped_from_the_text(fake: FakeTelegram, alice: User) -> None:
    group = fake.new_group()
    routed = decide(fake, mentions(fake, group, alice, "what is 2+2?"))
    assert routed.action is Action.CHAT
    assert routed.message is not None
    assert routed.message.text == "what is 2+2?"
    assert routed.message.key == ConversationKey("telegram", str(group.id), str(alice.id))
    assert routed.target is not None
    assert routed.target.reply_to == int(routed.message.message_id)
    assert not routed.target.private


def test_mention_is_case_insensitive_and_may_be_anywhere(fake: FakeTelegram, alice: User) -> None:
    group = fake.new_group()
    handle = f"@{(fake.bot.username or '').upper()}"
    routed = decide(fake, says(fake, group, alice, f"hey {handle} 😀 help"))
    assert routed.message is not None
    assert routed.message.text == "hey  😀 help"


def test_a_reply_to_the_bot_is_addressed(fake: FakeTelegram, alice: User) -> None:
    group = fake.new_group()
    bot_message = fake.message(group, fake.bot, "an earlier answer")
    routed = decide(fake, says(fake, group, alice, "why?", reply_to=bot_message))
    assert routed.action is Action.CHAT
    assert routed.message is not None
    assert routed.message.text == "why?"
    someone = fake.message(group, alice, "my own message")
    other = says(fake, group, fake.new_user("Bob"), "+1", reply_to=someone)
    assert decide(fake, other).action is Action.IGNORE


def test_group_scope_chat_shares_one_conversation(fake: FakeTelegram, alice: User) -> None:
    group = fake.new_group()
    routed = decide(fake, mentions(fake, group, alice, "hi"), GroupScope.CHAT)
    assert routed.message is not None
    assert routed.message.key == ConversationKey("telegram", str(group.id), SHARED_USER)
    assert conversation_key(routed, scope=GroupScope.CHAT) == routed.message.key
    private = decide(fake, says(fake, fake.private_chat(alice), alice, "hi"), GroupScope.CHAT)
    assert private.message is not None
    assert private.message.key.user == str(alice.id)


def test_forum_topics_are_separate_conversations(fake: FakeTelegram, alice: User) -> None:
    forum = fake.new_group("Forum", forum=True)
    routed = decide(fake, mentions(fake, forum, alice, "in a topic", thread=77))
    assert routed.message is not None
    assert routed.message.key.thread == "77"
    assert routed.target is not None
    assert routed.target.thread_id == 77
    general = decide(fake, mentions(fake, forum, alice, "in General"))
    assert general.message is not None
    assert general.message.key.thread == ""
    assert general.target is not None
    assert general.target.thread_id is None


def test_reply_threads_outside_forums_are_not_topics(fake: FakeTelegram, alice: User) -> None:
    group = fake.new_group()
    routed = decide(fake, mentions(fake, group, alice, "hi", thread=5))
    assert routed.message is not None
    assert routed.message.key.thread == ""


def test_bots_and_service_messages_are_ignored_and_edits_handed_on(
    fake: FakeTelegram, alice: User
) -> None:
    chat = fake.private_chat(alice)
    group = fake.new_group()
    other_bot = User(99, "Other", "other_bot", is_bot=True)
    assert decide(fake, mentions(fake, group, other_bot, "hi")).action is Action.IGNORE
    assert decide(fake, says(fake, chat, fake.bot, "my own words")).action is Action.IGNORE
    sent = fake.message(chat, alice, "first")
    edited = decide(fake, update(sent, edited=True))
    assert edited.action is Action.EDIT
    assert edited.message is not None
    assert (edited.message.text, edited.message.message_id) == ("first", str(sent.message_id))
    assert edited.version
    command = fake.message(chat, alice, "/reset")
    assert decide(fake, update(command, edited=True)).action is Action.IGNORE
    service = {
        "update_id": next(_update_ids),
        "message": {
            "message_id": 9,
            "date": 0,
            "chat": group.to_dict(),
            "from": alice.to_dict(),
            "new_chat_members": [alice.to_dict()],
        },
    }
    assert decide(fake, service).action is Action.IGNORE


def test_commands_are_parsed(fake: FakeTelegram, alice: User) -> None:
    chat = fake.private_chat(alice)
    routed = decide(fake, says(fake, chat, alice, "/reset_user 123"))
    assert (routed.action, routed.command, routed.args) == (Action.COMMAND, "reset_user", "123")
    group = fake.new_group()
    addressed = decide(fake, says(fake, group, alice, f"/reset@{fake.bot.username}"))
    assert (addressed.action, addressed.command) == (Action.COMMAND, "reset")
    assert conversation_key(addressed, scope=GroupScope.USER) == ConversationKey(
        "telegram", str(group.id), str(alice.id)
    )
    private_unknown = decide(fake, says(fake, chat, alice, "/weather"))
    assert (private_unknown.action, private_unknown.command) == (Action.COMMAND, "weather")


def test_group_commands_for_other_bots_are_ignored(fake: FakeTelegram, alice: User) -> None:
    group = fake.new_group()
    assert decide(fake, says(fake, group, alice, "/reset@other_bot")).action is Action.IGNORE
    assert decide(fake, says(fake, group, alice, "/weather")).action is Action.IGNORE
    assert decide(fake, says(fake, group, alice, "/help")).action is Action.COMMAND


def test_callback_queries_are_routed(fake: FakeTelegram, alice: User) -> None:
    chat = fake.private_chat(alice)
    prompt = fake.message(chat, fake.bot, "Sure?")
    data = {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": "1",
            "from": alice.to_dict(),
            "chat_instance": "c",
            "data": "reset_all|y|1|2",
            "message": prompt.to_dict(),
        },
    }
    routed = decide(fake, data)
    assert (routed.action, routed.data, routed.user_id) == (
        Action.CALLBACK,
        "reset_all|y|1|2",
        str(alice.id),
    )
    assert routed.chat_id == chat.id
