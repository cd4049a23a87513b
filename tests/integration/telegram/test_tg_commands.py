"""/reset, /stop, /retry, and admin commands (refused to everyone else, nothing changes)."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from tests.fakes.fake_telegram import FakeTelegram, User
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.integration.telegram.conftest import ADMIN_ID, BotFactory, idle


def user_turns(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def history_keys(redis: aioredis.Redis) -> list[bytes]:
    return [key async for key in redis.scan_iter(match="parley:*:h")]


async def test_reset_forgets_this_conversation(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    chat = telegram.private_chat(alice)
    await telegram.private_text(alice, "remember me")
    await idle(bot, telegram)
    await telegram.command(chat, alice, "reset")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id)[-1] == "Done: this conversation starts fresh."
    await telegram.private_text(alice, "who am I?")
    await idle(bot, telegram)
    assert user_turns(vllm.requests[-1]) == ["who am I?"]


async def test_forget_deletes_all_of_my_conversations(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM, redis: aioredis.Redis
) -> None:
    bot = await start_bot()
    alice, bob = telegram.new_user("Alice"), telegram.new_user("Bob")
    group = telegram.new_group()
    await telegram.private_text(alice, "private words")
    await telegram.group_mention(group, alice, "group words")
    await telegram.private_text(bob, "bob's words")
    await idle(bot, telegram)
    assert len(await history_keys(redis)) == 3
    await telegram.command(telegram.private_chat(alice), alice, "forget")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id)[-1].startswith("Deleted 2 conversation(s)")
    assert len(await history_keys(redis)) == 1  # Bob's


async def test_stop_cancels_the_model_and_keeps_the_partial_answer(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    vllm.token_interval = 0.02
    bot = await start_bot()
    alice = telegram.new_user()
    chat = telegram.private_chat(alice)
    answer = "Story: " + " ".join(f"chapter{i}" for i in range(400))
    vllm.script(Reply(reasoning="Tell a story.", answer=answer))
    await telegram.private_text(alice, "tell me a long story")
    await telegram.wait_for(
        lambda: any("chapter3" in m.text for m in telegram.bot_messages(alice.id)),
        what="the answer to be under way",
    )
    await telegram.command(chat, alice, "stop")
    await idle(bot, telegram)
    (message,) = telegram.bot_messages(alice.id)
    partial, _, note = message.text.rpartition("\n\n")
    assert note == "⏹ Stopped."
    assert partial.startswith("Story:")
    assert answer.startswith(partial)
    assert partial != answer
    assert vllm.aborted == 1
    # The partial answer is remembered.
    await telegram.private_text(alice, "go on")
    await idle(bot, telegram)
    assistant = [m["content"] for m in vllm.requests[-1]["messages"] if m["role"] == "assistant"]
    assert assistant
    assert assistant[0].startswith("Story:")


async def test_stop_with_nothing_running_says_so(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    await telegram.command(telegram.private_chat(alice), alice, "stop")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == ["Nothing is running right now."]


async def test_retry_answers_the_last_message_again(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    chat = telegram.private_chat(alice)
    vllm.script(Reply("r", "first answer"), Reply("r", "second answer"))
    await telegram.private_text(alice, "question one")
    await idle(bot, telegram)
    await telegram.command(chat, alice, "retry")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == ["first answer", "second answer"]
    assert user_turns(vllm.requests[1]) == ["question one"]
    await telegram.private_text(alice, "question two")
    await idle(bot, telegram)
    request = vllm.requests[2]["messages"]
    assert user_turns(vllm.requests[2]) == ["question one", "question two"]
    assert [m["content"] for m in request if m["role"] == "assistant"] == ["second answer"]


async def test_admin_commands_are_refused_to_others_and_change_nothing(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM, redis: aioredis.Redis
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    chat = telegram.private_chat(alice)
    await telegram.private_text(alice, "keep this")
    await idle(bot, telegram)
    before = await history_keys(redis)
    assert before
    for command, args in (
        ("reset_all", ""),
        ("reset_user", str(alice.id)),
        ("reset_chat", ""),
        ("stats", ""),
    ):
        await telegram.command(chat, alice, command, args)
    await idle(bot, telegram)
    refusals = telegram.bot_texts(alice.id)[1:]
    assert len(refusals) == 4
    assert set(refusals) == {"Sorry, only the bot's administrators can do that."}
    assert not any(m.reply_markup for m in telegram.bot_messages(alice.id))
    assert await history_keys(redis) == before
    await telegram.private_text(alice, "still there?")
    await idle(bot, telegram)
    assert user_turns(vllm.requests[-1]) == ["keep this", "still there?"]


async def test_admin_stats_reset_user_and_reset_chat(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM, redis: aioredis.Redis
) -> None:
    bot = await start_bot()
    admin = User(ADMIN_ID, "Root")
    admin_chat = telegram.private_chat(admin)
    alice = telegram.new_user()
    group = telegram.new_group()
    await telegram.private_text(alice, "mine")
    await telegram.group_mention(group, alice, "in the group")
    await idle(bot, telegram)
    await telegram.command(admin_chat, admin, "stats")
    await idle(bot, telegram)
    stats = telegram.bot_texts(admin.id)[-1]
    assert "Conversations: 2" in stats
    assert "telegram: 2" in stats

    await telegram.command(group, admin, "reset_chat")
    await idle(bot, telegram)
    assert telegram.bot_texts(group)[-1] == "Removed 1 conversation(s) in this chat."
    await telegram.command(admin_chat, admin, "reset_user", str(alice.id))
    await idle(bot, telegram)
    assert telegram.bot_texts(admin.id)[-1] == f"Removed 1 conversation(s) of user {alice.id}."
    assert not await history_keys(redis)
    await telegram.command(admin_chat, admin, "reset_user", "not-a-number")
    await idle(bot, telegram)
    assert telegram.bot_texts(admin.id)[-1].startswith("Usage: /reset_user")


async def test_reset_all_asks_the_admin_first(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM, redis: aioredis.Redis
) -> None:
    bot = await start_bot()
    admin = User(ADMIN_ID, "Root")
    admin_chat = telegram.private_chat(admin)
    alice = telegram.new_user()
    await telegram.private_text(alice, "one")
    await telegram.private_text(admin, "two")
    await idle(bot, telegram)
    await telegram.command(admin_chat, admin, "reset_all")
    await idle(bot, telegram)
    prompt = telegram.last_bot_message(admin.id)
    assert prompt.reply_markup is not None
    yes, no = prompt.reply_markup["inline_keyboard"][0]
    assert len(await history_keys(redis)) == 2  # nothing happens before the answer

    update = await telegram.press_button(alice, prompt, yes["callback_data"])
    await idle(bot, telegram)
    answer = telegram.callback_answers[update["callback_query"]["id"]]
    assert "Only the admin who asked" in answer["text"]
    assert len(await history_keys(redis)) == 2

    update = await telegram.press_button(admin, prompt, yes["callback_data"])
    await idle(bot, telegram)
    assert telegram.callback_answers[update["callback_query"]["id"]]["text"].startswith("Deleted")
    assert prompt.text == "Deleted all 2 conversation(s)."
    assert prompt.reply_markup is None
    assert not await history_keys(redis)
    assert no["callback_data"].split("|")[1] == "n"
