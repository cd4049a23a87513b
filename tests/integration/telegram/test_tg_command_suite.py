"""The command suite (tests/integration/command_scenarios.py) on Telegram, via the fake Bot API,
with the bot's state on one redis-server and on a Redis Cluster."""

from __future__ import annotations

import pytest

from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.command_scenarios import CASES, Case
from tests.integration.telegram.conftest import BotFactory
from tests.support.messengers import STORES, TELEGRAM_ADMINS, TelegramMessenger, store_settings


@pytest.mark.parametrize("where", STORES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_command(
    case: Case,
    where: str,
    request: pytest.FixtureRequest,
    start_bot: BotFactory,
    telegram: FakeTelegram,
    vllm: FakeVLLM,
) -> None:
    store = store_settings(request, where)
    bot = await start_bot(core={"admin_ids": TELEGRAM_ADMINS, **store, **case.core})
    await case.run(TelegramMessenger(bot, telegram, vllm))
    # Whatever the scenario did, the Bot API refused nothing the bot sent (no flood control, no
    # bad entities or markup in a command's reply, no edit of a message that is not there).
    refused = [(c.method, c.error_code, c.description) for c in telegram.errors()]
    assert refused == []
