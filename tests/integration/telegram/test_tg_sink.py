"""The sinks over a real PTB Bot against the fake: errors translated, fallbacks, no-op edits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from telegram import Bot

from bots.telegram.sink import DraftSink, EditSink, ReplyTarget, telegram_limits
from core.errors import MessageGone, MessageRejected, RateLimited
from core.pacing import IntervalPacer
from core.sink import LengthUnit, Segment, SegmentKind
from tests.fakes.fake_telegram import FakeTelegram, User

ANSWER = SegmentKind.ANSWER


def answer(text: str) -> tuple[Segment, ...]:
    return (Segment(ANSWER, text),)


@pytest_asyncio.fixture
async def bot(telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    telegram.rules.enabled = False
    async with Bot(telegram.token, base_url=f"{telegram.url}/bot") as client:
        yield client


def edit_sink(bot: Bot, target: ReplyTarget) -> EditSink:
    return EditSink(bot, target, pacer=IntervalPacer(0.0), limits=telegram_limits(1.0))


async def test_limits_are_declared_in_utf16_with_a_margin(bot: Bot) -> None:
    limits = edit_sink(bot, ReplyTarget(1, True)).limits
    assert limits.unit is LengthUnit.UTF16
    assert 3800 <= limits.max_length < 4096
    assert limits.supports_collapsed


async def test_send_and_edit_render_entities(telegram: FakeTelegram, bot: Bot) -> None:
    alice = User(7, "Alice")
    telegram.private_chat(alice)
    sink = edit_sink(bot, ReplyTarget(7, True))
    ref = await sink.send(answer("**Hi**"))
    await sink.edit(ref, answer("**Hi** there `x`"))
    message = telegram.last_bot_message(7)
    assert message.text == "Hi there x"
    assert [e["type"] for e in message.entities] == ["bold", "code"]


async def test_an_unchanged_edit_costs_nothing_and_never_fails(
    telegram: FakeTelegram, bot: Bot
) -> None:
    telegram.private_chat(User(7, "Alice"))
    sink = edit_sink(bot, ReplyTarget(7, True))
    ref = await sink.send(answer("same"))
    calls = len(telegram.calls)
    await sink.edit(ref, answer("same"))
    assert len(telegram.calls) == calls  # no request at all
    # A sink that never saw the message: Telegram answers "not modified", the sink shrugs.
    await edit_sink(bot, ReplyTarget(7, True)).edit(ref, answer("same"))
    assert telegram.errors()[-1].description.startswith("Bad Request: message is not modified")
    await sink.edit(ref, answer("changed"))
    assert telegram.last_bot_message(7).text == "changed"


async def test_rejected_formatting_falls_back_to_plain_text(
    telegram: FakeTelegram, bot: Bot
) -> None:
    telegram.private_chat(User(7, "Alice"))
    telegram.reject_entities = True
    sink = edit_sink(bot, ReplyTarget(7, True))
    ref = await sink.send(answer("**bold** move"))
    assert telegram.last_bot_message(7).text == "**bold** move"
    await sink.edit(ref, answer("**bolder** move"))
    message = telegram.last_bot_message(7)
    assert (message.text, message.entities) == ("**bolder** move", [])


async def test_errors_are_translated(telegram: FakeTelegram, bot: Bot) -> None:
    telegram.private_chat(User(7, "Alice"))
    sink = edit_sink(bot, ReplyTarget(7, True))
    ref = await sink.send(answer("one"))
    telegram.delete_message(7, int(ref))
    with pytest.raises(MessageGone):
        await sink.edit(ref, answer("two"))
    telegram.force_retry_after(7, 3)
    with pytest.raises(RateLimited) as limited:
        await sink.send(answer("three"))
    assert limited.value.retry_after == 3
    with pytest.raises(MessageRejected):
        await sink.send(answer("x" * 5000))  # over the limit even as plain text
    with pytest.raises(MessageRejected):
        await sink.send(answer("   "))


async def test_groups_reply_to_the_question_once_and_topics_are_kept(
    telegram: FakeTelegram, bot: Bot
) -> None:
    forum = telegram.new_group(forum=True)
    alice = User(7, "Alice")
    question = telegram.message(forum, alice, "q", thread=5)
    sink = edit_sink(bot, ReplyTarget(forum.id, False, thread_id=5, reply_to=question.message_id))
    await sink.typing()
    await sink.send(answer("part one"))
    await sink.send(answer("part two"))
    first, second = telegram.bot_messages(forum)
    assert first.reply_to is question
    assert second.reply_to is None
    assert (first.thread_id, second.thread_id) == (5, 5)
    (action,) = telegram.calls_to("sendChatAction")
    assert action.params["message_thread_id"] == "5"


async def test_draft_sink_streams_drafts_and_lands_a_message(
    telegram: FakeTelegram, bot: Bot
) -> None:
    telegram.private_chat(User(7, "Alice"))
    target = ReplyTarget(7, True)
    sink = DraftSink(bot, target, messages=edit_sink(bot, target))
    ref = await sink.send(answer("Thinking"))
    await sink.edit(ref, answer("Think**ing more**"))
    assert not telegram.bot_messages(7)
    ((draft_id, versions),) = telegram.drafts(7).items()
    assert [v.text for v in versions] == ["Thinking", "Thinking more"]
    await sink.edit(ref, answer("Done."), final=True)
    assert telegram.bot_texts(7) == ["Done."]
    await sink.edit(ref, answer("Done. ✅"), final=True)  # later edits go to the real message
    assert telegram.bot_texts(7) == ["Done. ✅"]
    assert draft_id != 0


async def test_draft_sink_falls_back_to_edits_where_drafts_are_refused(
    telegram: FakeTelegram, bot: Bot
) -> None:
    group = telegram.new_group()  # sendMessageDraft works in private chats only
    target = ReplyTarget(group.id, True)
    sink = DraftSink(bot, target, messages=edit_sink(bot, target))
    ref = await sink.send(answer("partial"))
    await sink.edit(ref, answer("partial and more"))
    await sink.edit(ref, answer("all of it"), final=True)
    assert telegram.bot_texts(group) == ["all of it"]
