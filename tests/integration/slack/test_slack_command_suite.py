"""The command suite (tests/integration/command_scenarios.py) on Slack, through the fake Slack."""

from __future__ import annotations

import pytest

from tests.integration.command_scenarios import CASES, Case
from tests.integration.slack.conftest import StartBot
from tests.support.messengers import SLACK_ADMINS, SlackMessenger


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_command(case: Case, start_bot: StartBot) -> None:
    bot = await start_bot(admin_ids=SLACK_ADMINS, **case.core)
    await case.run(SlackMessenger(bot))
    # Whatever the scenario did, Slack refused nothing the bot sent (no rate limit, no bad blocks).
    refused = [(c.method, c.status, c.error) for c in bot.slack.calls if not c.ok]
    assert refused == []
