"""The command suite (tests/integration/command_scenarios.py) on Slack, through the fake Slack,
with the bot's state on one redis-server and on a Redis Cluster."""

from __future__ import annotations

import pytest

from tests.integration.command_scenarios import CASES, Case
from tests.integration.slack.conftest import StartBot
from tests.support.messengers import SLACK_ADMINS, STORES, SlackMessenger, store_settings


@pytest.mark.parametrize("where", STORES)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
async def test_command(
    case: Case, where: str, request: pytest.FixtureRequest, start_bot: StartBot
) -> None:
    store = store_settings(request, where)
    bot = await start_bot(admin_ids=SLACK_ADMINS, **store, **case.core)
    await case.run(SlackMessenger(bot))
    # Whatever the scenario did, Slack refused nothing the bot sent (no rate limit, no bad blocks).
    refused = [(c.method, c.status, c.error) for c in bot.slack.calls if not c.ok]
    assert refused == []
