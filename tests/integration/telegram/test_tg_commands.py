"""Telegram-only command behaviour; what every platform shares is in command_scenarios.py."""

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
    assert "Telegram: 2" in stats

    await telegram.command(group, admin, "reset_chat")
    await idle(bot, telegram)
    assert telegram.bot_texts(group)[-1] == "Removed 1 conversation in this chat."
    await telegram.command(admin_chat, admin, "reset_user", str(alice.id))
    await idle(bot, telegram)
    assert telegram.bot_texts(admin.id)[-1] == f"Removed 1 conversation of user {alice.id}."
    assert not await history_keys(redis)
    await telegram.command(admin_chat, admin, "reset_user", "not-a-number")
    await idle(bot, telegram)
    assert "Usage: /reset_user <numeric user id>" in telegram.bot_texts(admin.id)[-1]
