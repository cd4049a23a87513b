"""Signed requests, retries, Slack's limits and 429s: what reaches users stays whole."""

from __future__ import annotations

import asyncio

from tests.fakes.fake_slack import wait_until
from tests.fakes.fake_vllm import Reply
from tests.integration.slack.conftest import StartBot

GENERAL = "C0GENERAL"


def words(count: int, per_paragraph: int = 40) -> str:
    """A long answer of distinct words in paragraphs, so any loss or duplicate shows."""
    paragraphs = []
    for start in range(0, count, per_paragraph):
        stop = min(count, start + per_paragraph)
        paragraphs.append(" ".join(f"word{i:04d}" for i in range(start, stop)))
    return "\n\n".join(paragraphs)


async def test_forged_stale_and_missing_signatures_get_401(start_bot: StartBot) -> None:
    bot = await start_bot()
    event = bot.slack.user_message("D0USER1", "U0ALICE", "hi", channel_type="im")
    for signature in ("forged", "stale", "missing"):
        delivery = await bot.sender.event(event, signature=signature)
        assert delivery.status == 401, signature
    command = await bot.sender.command(
        "reset-all", user_id="U0ADMIN", channel_id=GENERAL, signature="forged"
    )
    assert command.status == 401
    await asyncio.sleep(0.3)
    assert bot.vllm.requests == []
    assert bot.slack.bot_messages() == []


async def test_events_are_acknowledged_at_once_and_answered_later(start_bot: StartBot) -> None:
    bot = await start_bot()
    # The model takes longer than Slack's 3-second ack deadline. The ack must not wait for it:
    # it comes before any of the answer (an order of events, so a busy machine cannot fake it).
    bot.vllm.first_token_delay = 4.0
    event = bot.slack.user_message("D0USER1", "U0ALICE", "slow one", channel_type="im")
    delivery = await bot.sender.event(event)
    assert delivery.status == 200
    assert bot.vllm.completed == 0  # acknowledged before the model answered…
    assert not any("slow one" in m.text for m in bot.slack.bot_replies("D0USER1", None))
    assert delivery.seconds < bot.vllm.first_token_delay  # …without waiting for it at all
    (reply,) = await bot.answered("D0USER1", None, timeout=30)
    assert reply.visible == "You said: slow one"


async def test_a_retried_event_is_answered_once(start_bot: StartBot) -> None:
    bot = await start_bot()
    bot.vllm.first_token_delay = 0.5
    event = bot.slack.user_message("D0USER1", "U0ALICE", "only once", channel_type="im")
    envelope = bot.slack.event_callback(event)
    first = await bot.sender.raw_event(envelope)
    retries = await asyncio.gather(
        bot.sender.raw_event(envelope, retry_num=1), bot.sender.raw_event(envelope, retry_num=2)
    )
    assert [first.status, *(r.status for r in retries)] == [200, 200, 200]
    await bot.answered("D0USER1", None)
    await asyncio.sleep(0.5)
    assert len(bot.slack.bot_replies("D0USER1", None)) == 1
    assert len(bot.vllm.requests) == 1


async def test_a_long_answer_continues_in_the_thread_with_nothing_lost(
    start_bot: StartBot,
) -> None:
    bot = await start_bot(slack_message_chars=500)
    answer = words(400)
    bot.vllm.token_interval = 0.001
    bot.vllm.script(Reply(reasoning="Counting words.", answer=answer))
    root = (await bot.mention("U0ALICE", "count to 400"))["ts"]
    await wait_until(lambda: len(bot.slack.bot_replies(GENERAL, root)) >= 8, timeout=30)
    replies = await bot.answered(GENERAL, root, count=8, timeout=30)
    assert all(len(m.text) <= 500 for m in replies)
    shown = " ".join(m.visible for m in replies)
    assert shown.split() == answer.split()
    assert all(m.thread_ts == root for m in replies)


async def test_twenty_threads_at_once_stay_inside_the_workspace_budget(
    start_bot: StartBot,
) -> None:
    # 300 chat.update per minute = one per 0.2 s for the whole workspace, all replies together.
    bot = await start_bot(slack_updates_per_minute=300)
    bot.slack.update_window.limit = 8  # Slack's side: 8 per second, room for network jitter
    bot.vllm.token_interval = 0.03
    answers = {f"C0ROOM{n:02d}": f"Answer {n}: " + words(60) for n in range(20)}
    for answer in answers.values():
        bot.vllm.script(Reply(reasoning="Thinking it over carefully.", answer=answer))
    # The fake vLLM answers scripts in request order; map them back by channel afterwards.
    mentions = await asyncio.gather(
        *(bot.mention(f"U0USER{n:02d}", "go", channel=ch) for n, ch in enumerate(answers))
    )
    replies = []
    for channel, event in zip(answers, mentions, strict=True):
        (reply,) = await bot.answered(channel, event["ts"], timeout=60)
        replies.append(reply)
    assert {r.visible for r in replies} == set(answers.values())
    assert sum(len(r.history) - 1 for r in replies) >= 20  # they did stream, by editing
    assert bot.slack.ratelimited == 0
    updates = [c.at for c in bot.slack.calls_to("chat.update", ok=True)]
    assert len(updates) <= (updates[-1] - updates[0]) * 5 + 2  # 5 per second on average
    assert bot.slack.peak("chat.update", 1.0) <= 8


async def test_a_429_mid_stream_still_ends_with_the_full_answer(start_bot: StartBot) -> None:
    bot = await start_bot()
    answer = words(120)
    bot.vllm.token_interval = 0.01
    bot.vllm.script(Reply(reasoning="Let me write a long answer.", answer=answer))
    root = (await bot.mention("U0ALICE", "write a lot"))["ts"]
    await wait_until(lambda: len(bot.slack.calls_to("chat.update", ok=True)) >= 2)
    bot.slack.force_ratelimit("chat.update", 1.5)
    (reply,) = await bot.answered(GENERAL, root, timeout=30)
    assert reply.visible == answer
    assert bot.slack.ratelimited >= 1
    limited = [c for c in bot.slack.calls if c.status == 429]
    later = [c for c in bot.slack.calls_to("chat.update", ok=True) if c.at > limited[0].at]
    # the bot waited out Retry-After (whole seconds, so 2 s) before writing again
    assert later
    assert later[0].at - limited[0].at >= 1.9


async def test_formatting_slack_rejects_falls_back_to_plain_text(start_bot: StartBot) -> None:
    bot = await start_bot()
    bot.slack.force_error("chat.postMessage", "msg_too_long")
    bot.vllm.token_interval = 0.01
    bot.vllm.script(Reply(reasoning="r", answer="**bold** & done"))
    await bot.dm("U0ALICE", "format me")
    (reply,) = await bot.answered("D0USER1", None)
    assert reply.visible == "*bold* & done"
    assert reply.history[0] == "💭 Thinking…"  # the first post went through as plain text
    first_post = bot.slack.calls_to("chat.postMessage", ok=True)[0]
    assert first_post.args["mrkdwn"] is False


async def test_two_replicas_answer_a_retried_event_once_and_share_stop(
    start_bot: StartBot,
) -> None:
    first, second = await start_bot(), await start_bot()
    event = first.slack.user_message("D0USER1", "U0ALICE", "hello replicas", channel_type="im")
    envelope = first.slack.event_callback(event)
    deliveries = await asyncio.gather(
        first.sender.raw_event(envelope), second.sender.raw_event(envelope, retry_num=1)
    )
    assert [d.status for d in deliveries] == [200, 200]
    await first.answered("D0USER1", None)
    await asyncio.sleep(0.3)
    assert len(first.slack.bot_replies("D0USER1", None)) == 1
    assert len(first.vllm.requests) == 1

    # a long answer running on one replica is stopped from the other
    first.vllm.token_interval = 0.05
    first.vllm.script(Reply(reasoning="r", answer=" ".join(["more"] * 300)))
    await first.dm("U0ALICE", "go on and on")
    await wait_until(lambda: "more" in first.slack.bot_replies("D0USER1", None)[-1].text)
    stop = await second.sender.command("stop", user_id="U0ALICE", channel_id="D0USER1")
    assert stop.json()["text"] == ""  # the stopped reply itself says so
    replies = await first.answered("D0USER1", None, count=2)
    assert replies[-1].visible.endswith(first.runtime.service.phrases.stopped)
