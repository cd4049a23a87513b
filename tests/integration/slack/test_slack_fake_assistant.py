"""The fake Slack's assistant methods check their arguments as Slack does."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.fake_slack import FakeSlack


def _client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])


async def test_title_and_suggested_prompts_are_checked_and_kept(fake_slack: FakeSlack) -> None:
    client = _client(fake_slack)
    await client.assistant_threads_setTitle(channel_id="D0ALICE", thread_ts="1.1", title="Hi")
    await client.assistant_threads_setSuggestedPrompts(
        channel_id="D0ALICE", thread_ts="1.1", prompts=[{"title": "A", "message": "Ask A"}]
    )
    assert fake_slack.titles == [{"channel_id": "D0ALICE", "thread_ts": "1.1", "title": "Hi"}]
    assert fake_slack.suggested_prompts[0]["prompts"] == [{"title": "A", "message": "Ask A"}]
    with pytest.raises(SlackApiError) as empty_title:
        await client.assistant_threads_setTitle(channel_id="D0ALICE", thread_ts="1.1", title="")
    assert empty_title.value.response["error"] == "invalid_arguments"
    too_many = [{"title": str(n), "message": str(n)} for n in range(5)]
    with pytest.raises(SlackApiError) as crowded:
        await client.assistant_threads_setSuggestedPrompts(
            channel_id="D0ALICE", thread_ts="1.1", prompts=too_many
        )
    assert crowded.value.response["error"] == "invalid_arguments"


def test_assistant_events_have_slacks_shape(fake_slack: FakeSlack) -> None:
    event = fake_slack.assistant_thread_event(
        "assistant_thread_started",
        user="U0ALICE",
        channel="D0ALICE",
        thread_ts="1.1",
        context_channel="C0GENERAL",
    )
    thread = event["assistant_thread"]
    assert thread["context"] == {"channel_id": "C0GENERAL", "team_id": fake_slack.team_id}
    assert (thread["user_id"], thread["channel_id"], thread["thread_ts"]) == (
        "U0ALICE",
        "D0ALICE",
        "1.1",
    )
