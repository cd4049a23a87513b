"""SLACK_STREAM_MODE=native: chat.startStream/appendStream/stopStream, chat.update as fallback."""

from __future__ import annotations

from tests.fakes.fake_slack import wait_until
from tests.fakes.fake_vllm import Reply
from tests.integration.slack.conftest import StartBot

GENERAL = "C0GENERAL"
ANSWER = (
    "Here is a plan:\n\n1. Boil **water**.\n2. Add the pasta.\n\n"
    "Then wait ten minutes, stirring now and then, and drain it."
)
ANSWER_AS_MRKDWN = (
    "Here is a plan:\n\n1. Boil *water*.\n2. Add the pasta.\n\n"
    "Then wait ten minutes, stirring now and then, and drain it."
)


async def test_native_stream_ends_with_exactly_the_answer(start_bot: StartBot) -> None:
    bot = await start_bot(slack_stream_mode="native")
    bot.vllm.token_interval = 0.02
    bot.vllm.script(Reply(reasoning="SECRET plan for pasta", answer=ANSWER))
    root = (await bot.mention("U0ALICE", "how do I cook pasta?"))["ts"]
    (reply,) = await bot.answered(GENERAL, root)
    assert reply.markdown
    assert not reply.streaming
    # Slack drops whitespace at the start of an appended chunk (the fake does too): nothing lost.
    assert reply.visible == ANSWER
    assert len(reply.history) > 2  # it grew in several appends
    assert not any("SECRET" in shown for shown in reply.history)
    start = bot.slack.calls_to("chat.startStream", ok=True)[0]
    assert start.args["recipient_user_id"] == "U0ALICE"
    assert start.args["recipient_team_id"] == bot.slack.team_id
    assert bot.slack.calls_to("chat.update") == []


async def test_a_dm_streams_in_a_thread_and_the_thread_continues_it(start_bot: StartBot) -> None:
    bot = await start_bot(slack_stream_mode="native")
    bot.vllm.script(Reply(reasoning="r", answer="Short and sweet."))
    event = await bot.dm("U0ALICE", "hi")
    (reply,) = await bot.answered("D0USER1", event["ts"])
    assert reply.visible == "Short and sweet."
    follow_up = bot.slack.user_message(
        "D0USER1", "U0ALICE", "and more?", thread_ts=event["ts"], channel_type="im"
    )
    await bot.sender.event(follow_up)
    await bot.answered("D0USER1", event["ts"], count=2)
    users = [m["content"] for m in bot.vllm.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["hi", "and more?"]


async def test_the_next_top_level_dm_remembers_the_previous_one(start_bot: StartBot) -> None:
    bot = await start_bot(slack_stream_mode="native")
    first = await bot.dm("U0ALICE", "My name is Ada")
    await bot.answered("D0USER1", first["ts"])
    second = await bot.dm("U0ALICE", "What is my name?")
    (reply,) = await bot.answered("D0USER1", second["ts"])
    assert reply.thread_ts == second["ts"]  # streams are thread replies: in its own thread
    users = [m["content"] for m in bot.vllm.requests[-1]["messages"] if m["role"] == "user"]
    assert users == ["My name is Ada", "What is my name?"]


async def test_a_native_answer_ends_with_its_buttons(start_bot: StartBot) -> None:
    bot = await start_bot(slack_stream_mode="native")
    event = await bot.dm("U0ALICE", "hi")
    (reply,) = await bot.answered("D0USER1", event["ts"])
    assert [b["text"]["text"] for b in reply.buttons] == ["🔄 Regenerate"]
    stop = bot.slack.calls_to("chat.stopStream", ok=True)[-1]
    assert stop.args["blocks"]


async def test_an_expired_stream_finishes_through_chat_update(start_bot: StartBot) -> None:
    bot = await start_bot(slack_stream_mode="native")
    bot.vllm.token_interval = 0.03
    bot.vllm.script(Reply(reasoning="r", answer=ANSWER))
    root = (await bot.mention("U0ALICE", "pasta?"))["ts"]
    await wait_until(lambda: len(bot.slack.calls_to("chat.appendStream", ok=True)) >= 1)
    bot.slack.expire_streams()  # Slack ends streams after about five minutes
    (reply,) = await bot.answered(GENERAL, root)
    assert reply.visible == ANSWER_AS_MRKDWN
    assert bot.slack.calls_to("chat.appendStream", ok=False)[0].error == (
        "message_not_in_streaming_state"
    )
    assert bot.slack.calls_to("chat.update", ok=True)


async def test_a_refused_stream_falls_back_to_posting(start_bot: StartBot) -> None:
    bot = await start_bot(slack_stream_mode="native")
    bot.slack.force_error("chat.startStream", "channel_type_not_supported")
    bot.vllm.script(Reply(reasoning="r", answer=ANSWER))
    root = (await bot.mention("U0ALICE", "pasta?"))["ts"]
    (reply,) = await bot.answered(GENERAL, root)
    assert reply.visible == ANSWER_AS_MRKDWN
    assert not reply.markdown


async def test_a_long_native_answer_continues_in_new_streams(start_bot: StartBot) -> None:
    bot = await start_bot(slack_stream_mode="native", slack_message_chars=300)
    answer = "\n\n".join(" ".join(f"w{p}x{i}" for i in range(30)) for p in range(6))
    bot.vllm.token_interval = 0.002
    bot.vllm.script(Reply(reasoning="r", answer=answer))
    root = (await bot.mention("U0ALICE", "long please"))["ts"]
    await wait_until(lambda: len(bot.slack.bot_replies(GENERAL, root)) >= 3, timeout=20)
    replies = await bot.answered(GENERAL, root, count=3, timeout=20)
    assert " ".join(m.visible for m in replies).split() == answer.split()
    assert all(not m.streaming for m in replies)
