"""Socket Mode: envelopes over the fake's WebSocket are acked and answered like HTTP events."""

from __future__ import annotations

import asyncio

import pytest

from bots.slack.app import check_app_token, check_token, web_client
from bots.slack.settings import SlackSettings
from core import texts
from core.errors import ConfigError
from tests.fakes.fake_slack import FakeSlack
from tests.fakes.fake_vllm import Reply
from tests.integration.slack.conftest import StartBot

APP_TOKEN = "xapp-fake-app-token"  # FakeSlack's default app-level token


async def test_socket_mode_answers_a_dm_and_acks_the_envelope(start_bot: StartBot) -> None:
    bot = await start_bot(slack_app_token=APP_TOKEN, slack_signing_secret=None)
    assert bot.settings.socket_mode
    bot.vllm.script(Reply(reasoning="hmm", answer="Hello over a socket."))
    event = bot.slack.user_message("D0USER1", "U0ALICE", "hi", channel_type="im")
    ack = await bot.slack.push_event(event)
    assert set(ack) == {"envelope_id"}  # an Events API ack carries no payload
    (reply,) = await bot.answered("D0USER1", None)
    assert reply.visible == "Hello over a socket."


async def test_socket_mode_mentions_duplicates_and_commands(start_bot: StartBot) -> None:
    bot = await start_bot(slack_app_token=APP_TOKEN)
    slack = bot.slack
    event = slack.user_message("C0GENERAL", "U0ALICE", f"<@{slack.bot_user_id}> ping")
    mention = slack.mention(event)
    await asyncio.gather(
        slack.push_event(mention, event_id="Ev0SAME"), slack.push_event(mention, event_id="Ev0SAME")
    )
    (reply,) = await bot.answered("C0GENERAL", event["ts"])
    assert reply.visible == "You said: ping"
    await asyncio.sleep(0.3)
    assert len(bot.vllm.requests) == 1

    ack = await slack.push_command("reset-all", user_id="U0ALICE", channel_id="C0GENERAL")
    assert ack["payload"]["text"] == texts.NOT_ADMIN
    ack = await slack.push_command("help", user_id="U0ALICE", channel_id="C0GENERAL")
    assert "/parley stop" in ack["payload"]["text"]


async def test_wrong_tokens_stop_parley_at_start(fake_slack: FakeSlack) -> None:
    settings = SlackSettings(
        slack_bot_token="xoxb-wrong", slack_app_token="xapp-wrong", slack_api_url=fake_slack.api_url
    )
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN: invalid_auth"):
        await check_token(web_client(settings))
    good = web_client(
        SlackSettings(
            slack_bot_token=fake_slack.bot_token,
            slack_app_token="xapp-wrong",
            slack_api_url=fake_slack.api_url,
        )
    )
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN: invalid_auth"):
        await check_app_token(good, "xapp-wrong")
    await check_app_token(good, fake_slack.app_token)
