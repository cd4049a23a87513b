"""Slack-only command behaviour (channels, threads); the shared part is in command_scenarios.py."""

from __future__ import annotations

from core import texts
from tests.fakes.fake_slack import wait_until
from tests.fakes.fake_vllm import Reply
from tests.integration.slack.conftest import ADMIN, RunningBot, StartBot

GENERAL = "C0GENERAL"
DM = "D0USER1"


async def command(bot: RunningBot, text: str, *, user: str, channel: str = GENERAL) -> str:
    """Run /parley over signed HTTP; returns the ephemeral text."""
    delivery = await bot.sender.command(text, user_id=user, channel_id=channel)
    assert delivery.status == 200, delivery  # the sender gives up after 3 s, as Slack does
    return str(delivery.json()["text"])


async def conversations(bot: RunningBot) -> int:
    """How many conversations the store holds."""
    return (await bot.runtime.service.runner.store.stats()).conversations


async def two_conversations(bot: RunningBot) -> None:
    """Alice in a DM and Bob in a channel thread."""
    await bot.dm("U0ALICE", "hello")
    await bot.answered(DM, None)
    root = (await bot.mention("U0BOB", "hi there"))["ts"]
    await bot.answered(GENERAL, root)
    assert await conversations(bot) == 2


async def test_admin_stats_and_resets(start_bot: StartBot) -> None:
    bot = await start_bot()
    await two_conversations(bot)
    stats = await command(bot, "stats", user=ADMIN)
    assert "Conversations: 2 (4 messages)" in stats
    assert "• Slack: 2" in stats
    reply = await command(bot, "reset-user <@U0ALICE|alice>", user=ADMIN)
    assert reply == "Removed 1 conversation of user U0ALICE."
    assert await command(bot, "reset-channel", user=ADMIN, channel=GENERAL) == (
        "Removed 1 conversation in this chat."
    )
    assert await conversations(bot) == 0


async def test_reset_forgets_the_latest_conversation_here(start_bot: StartBot) -> None:
    bot = await start_bot()
    await bot.dm("U0ALICE", "remember me")
    await bot.answered(DM, None)
    assert await command(bot, "reset", user="U0ALICE", channel=DM) == texts.RESET_DONE
    await bot.dm("U0ALICE", "who am I?")
    await bot.answered(DM, None, count=2)
    users = [m["content"] for m in bot.vllm.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["who am I?"]
    assert await command(bot, "reset", user="U0CAROL", channel=GENERAL) == texts.NO_CONVERSATION


async def test_stop_ends_a_running_answer_and_keeps_what_was_shown(start_bot: StartBot) -> None:
    bot = await start_bot()
    bot.vllm.token_interval = 0.05
    bot.vllm.script(Reply(reasoning="thinking", answer=" ".join(["word"] * 400)))
    root = (await bot.mention("U0ALICE", "talk for a long time"))["ts"]
    await wait_until(lambda: any("word" in m.text for m in bot.slack.bot_replies(GENERAL, root)))
    phrases = bot.runtime.service.phrases
    assert await command(bot, "stop", user="U0ALICE") == ""  # the reply itself says ⏹ Stopped
    (reply,) = await bot.answered(GENERAL, root)
    assert reply.visible.startswith("word word")
    assert reply.visible.endswith(phrases.stopped)
    assert await command(bot, "stop", user="U0ALICE") == texts.NOTHING_RUNNING


async def test_retry_answers_the_last_message_again_in_its_thread(start_bot: StartBot) -> None:
    bot = await start_bot()
    bot.vllm.script(Reply("r", "first answer"), Reply("r", "second answer"))
    root = (await bot.mention("U0ALICE", "tell me something"))["ts"]
    await bot.answered(GENERAL, root)
    assert await command(bot, "retry", user="U0ALICE") == texts.RETRYING
    replies = await bot.answered(GENERAL, root, count=2)
    assert [m.visible for m in replies] == ["first answer", "second answer"]
    users = [m["content"] for m in bot.vllm.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["tell me something"]
