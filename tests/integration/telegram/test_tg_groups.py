"""Groups and forum topics: who is answered, whose history continues, where replies go."""

from __future__ import annotations

from typing import Any

from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import BotFactory, idle


def user_turns(request: dict[str, Any]) -> list[str]:
    """The user messages the model received, oldest first."""
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def test_only_messages_addressed_to_the_bot_are_answered(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice, bob = telegram.new_user("Alice"), telegram.new_user("Bob")
    group = telegram.new_group()
    await telegram.group_text(group, alice, "morning all")
    await telegram.media(group, bob, "sticker")
    await telegram.command(group, bob, "weather", addressed=False)
    await idle(bot, telegram)
    assert not vllm.requests
    assert not telegram.bot_messages(group)

    update = await telegram.group_mention(group, alice, "what is 2+2?")
    await idle(bot, telegram)
    (answer,) = telegram.bot_messages(group)
    assert answer.text == "You said: what is 2+2?"
    assert answer.reply_to is not None
    assert answer.reply_to.message_id == update["message"]["message_id"]

    await telegram.reply_to_bot(group, bob, answer, "and 3+3?")
    await idle(bot, telegram)
    assert telegram.bot_texts(group)[-1] == "You said: and 3+3?"
    assert len(vllm.requests) == 2


async def test_each_member_has_their_own_history_by_default(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice, bob = telegram.new_user("Alice"), telegram.new_user("Bob")
    group = telegram.new_group()
    await telegram.group_mention(group, alice, "alice one")
    await idle(bot, telegram)
    await telegram.group_mention(group, bob, "bob one")
    await idle(bot, telegram)
    await telegram.group_mention(group, alice, "alice two")
    await idle(bot, telegram)
    assert user_turns(vllm.requests[1]) == ["bob one"]
    assert user_turns(vllm.requests[2]) == ["alice one", "alice two"]


async def test_group_scope_chat_shares_one_conversation(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot(tg={"telegram_group_scope": "chat"})
    alice, bob = telegram.new_user("Alice"), telegram.new_user("Bob")
    group = telegram.new_group()
    await telegram.group_mention(group, alice, "alice one")
    await idle(bot, telegram)
    await telegram.group_mention(group, bob, "bob one")
    await idle(bot, telegram)
    assert user_turns(vllm.requests[1]) == ["alice one", "bob one"]
    # A private chat is still the user's own conversation.
    await telegram.private_text(bob, "private")
    await idle(bot, telegram)
    assert user_turns(vllm.requests[2]) == ["private"]


async def test_forum_topics_are_separate_and_replies_stay_in_the_topic(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user("Alice")
    forum = telegram.new_group("Forum", forum=True)
    await telegram.topic_message(forum, alice, 11, "topic eleven")
    await idle(bot, telegram)
    await telegram.topic_message(forum, alice, 22, "topic twenty-two")
    await idle(bot, telegram)
    await telegram.topic_message(forum, alice, 11, "eleven again")
    await idle(bot, telegram)
    assert telegram.bot_texts(forum, thread=11) == [
        "You said: topic eleven",
        "You said: eleven again",
    ]
    assert telegram.bot_texts(forum, thread=22) == ["You said: topic twenty-two"]
    assert user_turns(vllm.requests[1]) == ["topic twenty-two"]
    assert user_turns(vllm.requests[2]) == ["topic eleven", "eleven again"]
    assert all(c.params.get("message_thread_id") for c in telegram.calls_to("sendChatAction"))


async def test_group_replies_respect_the_group_budget(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    """Three members at once in one group: every write shares the group's budget."""
    vllm.token_interval = 0.003
    bot = await start_bot()
    group = telegram.new_group()
    users = [telegram.new_user(f"U{i}") for i in range(3)]
    for user in users:
        await telegram.group_mention(group, user, f"question from {user.first_name} " * 20)
    await idle(bot, telegram, timeout=60)
    texts = telegram.bot_texts(group)
    assert sorted(texts) == sorted(
        f"You said: {('question from ' + u.first_name + ' ') * 20}".strip() for u in users
    )
    assert not telegram.flood_errors()
