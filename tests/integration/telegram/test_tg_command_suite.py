"""The command suite (tests/integration/command_scenarios.py) on Telegram, via the fake Bot API."""

from __future__ import annotations

import pytest

from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.command_scenarios import CASES, Case
from tests.integration.telegram.conftest import BotFactory
from tests.support.messengers import TELEGRAM_ADMINS, TelegramMessenger


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_command(
    case: Case, start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot(core={"admin_ids": TELEGRAM_ADMINS, **case.core})
    await case.run(TelegramMessenger(bot, telegram, vllm))
    # Whatever the scenario did, the Bot API refused nothing the bot sent (no flood control, no
    # bad entities or markup in a command's reply, no edit of a message that is not there).
    refused = [(c.method, c.error_code, c.description) for c in telegram.errors()]
    assert refused == []
