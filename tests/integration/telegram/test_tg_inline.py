"""Telegram inline mode: `@bot question` in any chat, answered by editing the inline message."""

from __future__ import annotations

import asyncio

import aiohttp

from bots.telegram.inline import PENDING_STOP
from tests.fakes.fake_telegram import NOT_MODIFIED, FakeTelegram, InlineMessage
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.integration.telegram.conftest import BotFactory, idle
from tests.support.timing import eventually


def _no_trouble(telegram: FakeTelegram) -> None:
    """No flood control and no edit that changed nothing."""
    assert not telegram.errors(code=429)
    assert not [c for c in telegram.errors() if "not modified" in c.description]
    assert NOT_MODIFIED  # the rule the fake enforces


def _flat(text: str) -> str:
    return " ".join(text.split())


def _buttons(inline: InlineMessage) -> list[dict[str, str]]:
    markup = inline.reply_markup or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


async def test_an_inline_query_gets_one_personal_uncached_result(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user("Alice")
    query_id = await telegram.inline_query(alice, "What is 2+2?")
    empty_id = await telegram.inline_query(alice, "   ")
    await idle(bot, telegram)
    answer = telegram.inline_queries[query_id].answer
    assert answer is not None
    assert answer["is_personal"] in (True, "true", "True")
    assert int(answer["cache_time"]) == 0
    (result,) = answer["results"]
    assert result["title"] == "Ask Parley"
    assert "What is 2+2?" in result["input_message_content"]["message_text"]
    assert [b["callback_data"] for b in result["reply_markup"]["inline_keyboard"][0]] == [
        PENDING_STOP
    ]
    empty = telegram.inline_queries[empty_id].answer
    assert empty is not None
    assert not empty["results"]
    assert not vllm.requests  # nothing is asked until a result is sent
    assert not telegram.errors()


async def test_a_chosen_result_streams_the_answer_into_the_inline_message(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user("Alice")
    group = telegram.new_group()
    query_id = await telegram.inline_query(alice, "hello there")
    await idle(bot, telegram)
    inline = await telegram.choose_inline_result(query_id, group)
    assert inline is not None
    await idle(bot, telegram)
    assert "You said: hello there" in inline.text
    assert "hello there" in inline.text.split("\n")[0]  # the question stays on top
    assert len(inline.history) > 2  # thinking, then the answer, by edits
    assert not _buttons(inline)  # Stop went away with the final text
    assert any("Thinking" in version.text for version in inline.history)
    (request,) = vllm.requests
    users = [m for m in request["messages"] if m["role"] == "user"]
    assert len(users) == 1  # one-shot: no history
    assert not telegram.bot_messages(group.id)  # nothing but the inline message
    _no_trouble(telegram)

    # a second inline question is a conversation of its own
    second = await telegram.inline_query(alice, "again")
    await idle(bot, telegram)
    other = await telegram.choose_inline_result(second, group)
    await idle(bot, telegram)
    assert other is not None
    assert "You said: again" in other.text
    users = [m for m in vllm.requests[-1]["messages"] if m["role"] == "user"]
    assert len(users) == 1
    _no_trouble(telegram)


async def test_stop_in_an_inline_message_keeps_what_was_shown(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user("Alice")
    group = telegram.new_group()
    vllm.script(Reply("thinking it over", "First part. " + "More words here. " * 200))
    vllm.stall_after(40, 60.0)
    query_id = await telegram.inline_query(alice, "tell me a story")
    await idle(bot, telegram)
    inline = await telegram.choose_inline_result(query_id, group)
    assert inline is not None

    def real_stop() -> str:
        data = [b["callback_data"] for b in _buttons(inline)]
        return data[0] if data and data[0] != PENDING_STOP else ""

    await eventually(lambda: bool(real_stop()) and "First part" in inline.text, what="Stop")
    update = await telegram.press_inline_button(alice, inline, real_stop())
    await idle(bot, telegram)
    assert "text" not in telegram.callback_answers[update["callback_query"]["id"]]
    assert "First part" in inline.text
    assert "⏹ Stopped." in inline.text
    assert not _buttons(inline)
    assert vllm.aborted == 1
    _no_trouble(telegram)


async def test_a_long_answer_ends_with_a_note_and_arrives_whole_in_private(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user("Alice")
    await telegram.private_text(alice, "hi")  # she started the bot
    await idle(bot, telegram)
    group = telegram.new_group()
    long = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 5 for i in range(60))
    vllm.script(Reply("planning", long))
    query_id = await telegram.inline_query(alice, "write a lot")
    await idle(bot, telegram)
    inline = await telegram.choose_inline_result(query_id, group)
    assert inline is not None
    await idle(bot, telegram)
    assert inline.text.startswith("❓ write a lot")
    assert inline.text.endswith("… The whole answer is in your private chat with me.")
    assert "Paragraph 0:" in inline.text
    assert "Paragraph 59:" not in inline.text
    private = telegram.bot_texts(alice.id)[1:]  # after the answer to "hi"
    assert private[0] == "The whole answer to your inline question “write a lot”:"
    assert len(private) >= 3  # it needed more than one message
    assert _flat(" ".join(private[1:])) == _flat(long)
    _no_trouble(telegram)


async def test_a_long_answer_asks_to_start_the_bot_when_it_cannot_be_sent(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    bob = telegram.new_user("Bob")  # never opened the bot's private chat
    group = telegram.new_group()
    long = "\n\n".join(f"Paragraph {i}: " + "lorem ipsum dolor sit amet " * 5 for i in range(60))
    vllm.script(Reply("planning", long))
    query_id = await telegram.inline_query(bob, "write a lot")
    await idle(bot, telegram)
    inline = await telegram.choose_inline_result(query_id, group)
    assert inline is not None
    await idle(bot, telegram)
    assert inline.text.endswith("(/start) to get long answers whole.")
    assert [c.error_code for c in telegram.errors()] == [403]
    _no_trouble(telegram)


async def test_a_refused_user_is_told_in_the_inline_message(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot(core={"access": "allowlist"})
    mallory = telegram.new_user("Mallory")
    group = telegram.new_group()
    query_id = await telegram.inline_query(mallory, "let me in")
    await idle(bot, telegram)
    inline = await telegram.choose_inline_result(query_id, group)
    assert inline is not None
    await idle(bot, telegram)
    assert bot.runtime.service.phrases.refused in inline.text
    assert not _buttons(inline)
    assert not vllm.requests
    _no_trouble(telegram)


async def test_a_late_answer_to_an_inline_query_is_refused_by_the_fake(
    telegram: FakeTelegram,
) -> None:
    """The fake enforces Telegram's window: a query answered too late is QUERY_ID_INVALID."""
    alice = telegram.new_user("Alice")
    telegram.rules.time_scale = 0.0  # the window is gone at once
    query_id = await telegram.inline_query(alice, "late")
    await asyncio.sleep(0.01)
    url = f"{telegram.url}/bot{telegram.token}/answerInlineQuery"
    async with aiohttp.ClientSession() as session:
        body = {"inline_query_id": query_id, "results": []}
        async with session.post(url, json=body) as response:
            data = await response.json()
    assert response.status == 400
    assert data["description"] == "Bad Request: QUERY_ID_INVALID"
