"""DMs, mentions and thread follow-ups over signed HTTP, answered with the model's answer."""

from __future__ import annotations

import asyncio

from core.phrases import Phrases
from tests.fakes.fake_vllm import Reply
from tests.integration.slack.conftest import StartBot

REASONING = "SECRET-REASONING: the capital of France is Paris, I am quite sure of it."
ANSWER = "The capital of France is **Paris**."
ANSWER_SEEN = "The capital of France is *Paris*."  # what Slack shows for **Paris** as mrkdwn
GENERAL = "C0GENERAL"


def user_turns(request: dict[str, object]) -> list[str]:
    """The user messages the model server received in one request."""
    messages = request["messages"]
    assert isinstance(messages, list)
    return [m["content"] for m in messages if m["role"] == "user"]


async def test_a_dm_is_answered_with_the_models_answer(start_bot: StartBot) -> None:
    bot = await start_bot()
    bot.vllm.script(Reply(reasoning=REASONING, answer=ANSWER))
    await bot.dm("U0ALICE", "What is the capital of France?")
    (reply,) = await bot.answered("D0USER1", None)
    assert reply.visible == ANSWER_SEEN
    assert reply.thread_ts is None  # a DM is answered where it was written
    assert user_turns(bot.vllm.requests[-1]) == ["What is the capital of France?"]


async def test_progress_mode_shows_progress_but_never_the_reasoning(start_bot: StartBot) -> None:
    bot = await start_bot(show_reasoning="progress")
    bot.vllm.token_interval = 0.02
    bot.vllm.script(Reply(reasoning=REASONING * 4, answer=ANSWER))
    await bot.dm("U0ALICE", "Capital of France?")
    (reply,) = await bot.answered("D0USER1", None)
    assert reply.visible == ANSWER_SEEN
    assert any("Thinking" in shown for shown in reply.history)
    assert not any("SECRET-REASONING" in shown for shown in reply.history)
    # Slack's assistant status ("is thinking…") is set while reasoning and cleared at the end.
    assert bot.slack.statuses[0]["status"] == "is thinking…"
    assert bot.slack.statuses[-1]["status"] == ""


async def test_full_mode_quotes_the_reasoning_above_the_answer(start_bot: StartBot) -> None:
    bot = await start_bot(show_reasoning="full")
    bot.vllm.script(Reply(reasoning=REASONING, answer=ANSWER))
    await bot.dm("U0ALICE", "Capital of France?")
    (reply,) = await bot.answered("D0USER1", None)
    assert reply.visible == f"> 💭 {REASONING}\n\n{ANSWER_SEEN}"


async def test_collapsed_mode_puts_the_reasoning_under_the_answer(start_bot: StartBot) -> None:
    bot = await start_bot(show_reasoning="collapsed")
    bot.vllm.script(Reply(reasoning=REASONING, answer=ANSWER))
    await bot.dm("U0ALICE", "Capital of France?")
    (reply,) = await bot.answered("D0USER1", None)
    assert reply.visible == f"{ANSWER_SEEN}\n\n> 💭 {REASONING}"


async def test_a_mention_is_answered_in_a_thread_and_follow_ups_continue_it(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    mention = await bot.mention("U0ALICE", "Name a colour")
    root = mention["ts"]
    (first,) = await bot.answered(GENERAL, root)
    assert first.visible == "You said: Name a colour"
    assert bot.slack.bot_replies(GENERAL, None) == []  # nothing at the channel's top level

    follow_up = bot.slack.user_message(GENERAL, "U0ALICE", "Another one", thread_ts=root)
    assert (await bot.sender.event(follow_up)).status == 200
    replies = await bot.answered(GENERAL, root, count=2)
    assert replies[-1].visible == "You said: Another one"
    assert user_turns(bot.vllm.requests[-1]) == ["Name a colour", "Another one"]


async def test_per_user_history_in_a_shared_thread(start_bot: StartBot) -> None:
    bot = await start_bot()
    root = (await bot.mention("U0ALICE", "I am Alice"))["ts"]
    await bot.answered(GENERAL, root)
    other = bot.slack.user_message(GENERAL, "U0BOB", "And I am Bob", thread_ts=root)
    await bot.sender.event(other)
    await bot.answered(GENERAL, root, count=2)
    assert user_turns(bot.vllm.requests[-1]) == ["And I am Bob"]


async def test_thread_scope_shares_one_conversation(start_bot: StartBot) -> None:
    bot = await start_bot(slack_thread_scope="thread")
    root = (await bot.mention("U0ALICE", "I am Alice"))["ts"]
    await bot.answered(GENERAL, root)
    other = bot.slack.user_message(GENERAL, "U0BOB", "And I am Bob", thread_ts=root)
    await bot.sender.event(other)
    await bot.answered(GENERAL, root, count=2)
    assert user_turns(bot.vllm.requests[-1]) == ["I am Alice", "And I am Bob"]


async def test_a_mention_sent_as_two_events_is_answered_once(start_bot: StartBot) -> None:
    bot = await start_bot()
    event = bot.slack.user_message(GENERAL, "U0ALICE", f"<@{bot.slack.bot_user_id}> hello")
    results = await asyncio.gather(
        bot.sender.event(event), bot.sender.event(bot.slack.mention(event))
    )
    assert [r.status for r in results] == [200, 200]
    await bot.answered(GENERAL, event["ts"])
    await asyncio.sleep(0.3)
    assert len(bot.slack.bot_replies(GENERAL, event["ts"])) == 1
    assert len(bot.vllm.requests) == 1


async def test_what_parley_ignores(start_bot: StartBot) -> None:
    bot = await start_bot()
    slack = bot.slack
    # a thread Parley is not part of, and top-level chatter without a mention
    stranger_root = slack.user_message(GENERAL, "U0ALICE", "team lunch?")
    ignored = [
        stranger_root,
        slack.user_message(GENERAL, "U0BOB", "yes!", thread_ts=stranger_root["ts"]),
        # another app's message, our own message, an edit, a join
        {**slack.user_message("D0USER1", "U0OTHERBOT", "beep", channel_type="im"), "bot_id": "B9"},
        slack.user_message("D0USER1", slack.bot_user_id, "my own words", channel_type="im"),
        slack.edit_event(slack.user_message("D0USER1", "U0ALICE", "hi", channel_type="im"), "hey"),
        {**slack.user_message(GENERAL, "U0ALICE", "joined"), "subtype": "channel_join"},
    ]
    for event in ignored:
        assert (await bot.sender.event(event)).status == 200
    await asyncio.sleep(0.5)
    assert bot.vllm.requests == []
    assert slack.bot_messages() == []


async def test_files_without_text_get_a_short_text_only_reply(start_bot: StartBot) -> None:
    bot = await start_bot()
    event = bot.slack.user_message(
        "D0USER1", "U0ALICE", "", channel_type="im", files=[{"id": "F1", "name": "cat.png"}]
    )
    await bot.sender.event(event)
    (reply,) = await bot.answered("D0USER1", None)
    assert reply.visible == Phrases().text_only
    assert bot.vllm.requests == []


async def test_a_file_with_a_caption_is_answered(start_bot: StartBot) -> None:
    bot = await start_bot()
    event = bot.slack.user_message(
        "D0USER1", "U0ALICE", "what is this?", channel_type="im", files=[{"id": "F1"}]
    )
    await bot.sender.event(event)
    (reply,) = await bot.answered("D0USER1", None)
    assert reply.visible == "You said: what is this?"


async def test_slack_markup_reaches_the_model_as_plain_text(start_bot: StartBot) -> None:
    bot = await start_bot()
    await bot.dm("U0ALICE", "is 1 &lt; 2 &amp;&amp; see <https://example.com|this> <@U0BOB>")
    await bot.answered("D0USER1", None)
    assert user_turns(bot.vllm.requests[-1]) == [
        "is 1 < 2 && see this (https://example.com) @U0BOB"
    ]
