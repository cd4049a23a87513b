"""Buttons under answers on Telegram: answered at once, refused to others and on old answers."""

from __future__ import annotations

from tests.fakes.fake_telegram import FakeMessage, FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import BotFactory, idle


def data(message: FakeMessage, label: str) -> str:
    """The callback data of the button starting with ``label`` under ``message``."""
    assert message.reply_markup is not None
    buttons = [b for row in message.reply_markup["inline_keyboard"] for b in row]
    (found,) = [b["callback_data"] for b in buttons if b["text"].startswith(label)]
    return str(found)


async def test_a_press_on_an_older_answer_says_it_is_too_old(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user("Alice")
    await telegram.private_text(alice, "one")
    await idle(bot, telegram)
    await telegram.private_text(alice, "two")
    await idle(bot, telegram)
    older = telegram.bot_messages(alice.id)[0]
    update = await telegram.press_button(alice, older, data(older, "🔄"))
    await idle(bot, telegram)
    answer = telegram.callback_answers[update["callback_query"]["id"]]
    assert answer["text"] == bot.runtime.service.phrases.too_old
    assert answer["show_alert"] in (True, "true")
    assert len(vllm.requests) == 2
    assert telegram.bot_texts(alice.id) == ["You said: one", "You said: two"]


async def test_in_a_group_only_the_asker_may_press(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice, bob = telegram.new_user("Alice"), telegram.new_user("Bob")
    group = telegram.new_group()
    await telegram.group_mention(group, alice, "a question")
    await idle(bot, telegram)
    answer = telegram.last_bot_message(group.id)
    update = await telegram.press_button(bob, answer, data(answer, "🔄"))
    await idle(bot, telegram)
    refused = telegram.callback_answers[update["callback_query"]["id"]]
    assert refused["text"] == bot.runtime.service.phrases.not_yours
    assert len(vllm.requests) == 1
    update = await telegram.press_button(alice, answer, data(answer, "🔄"))
    await idle(bot, telegram)
    assert "text" not in telegram.callback_answers[update["callback_query"]["id"]]
    assert len(vllm.requests) == 2
    assert len(telegram.bot_messages(group.id)) == 1  # regenerated in place
    assert not telegram.errors()
