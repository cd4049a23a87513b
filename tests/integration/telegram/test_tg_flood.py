"""A flood from one Telegram user: a few answers, one notice, nothing left running."""

from __future__ import annotations

from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import BotFactory, idle


async def test_a_telegram_flood_gets_a_few_answers_and_one_notice(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot(core={"quota_messages_per_minute": 0})
    alice = telegram.new_user()
    for n in range(1000):
        await telegram.private_text(alice, f"flood {n}")
    await idle(bot, telegram, timeout=120)
    texts = telegram.bot_texts(alice.id)
    notices = [t for t in texts if "still answering" in t]
    assert len(notices) == 1  # once a minute, not once per refused message
    assert len(texts) == len(vllm.requests) + 1  # every other message was refused in silence
    assert len(vllm.requests) < 100  # a few turns at a time, never the flood
    assert not telegram.flood_errors()
    assert bot.handlers is not None
    assert bot.handlers.running_replies == 0
