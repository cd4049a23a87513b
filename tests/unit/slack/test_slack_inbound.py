"""Which Slack events Parley answers, where it answers, and whose conversation it continues."""

from __future__ import annotations

from typing import Any

import pytest

from bots.slack.inbound import Route, from_edit, from_mention, from_message, normalise_text
from bots.slack.settings import ThreadScope
from core.conversation import ConversationKey

BOT = "U0PARLEY"


def message(**fields: Any) -> dict[str, Any]:
    base = {"type": "message", "channel": "C1", "user": "U1", "text": "hi", "ts": "10.1"}
    return base | fields


@pytest.mark.parametrize(
    "event",
    [
        message(channel_type="channel"),  # top-level chatter in a channel
        message(channel_type="im", bot_id="B9"),  # another app
        message(channel_type="im", bot_profile={"id": "B9"}),
        message(channel_type="im", user=BOT),  # ourselves
        message(channel_type="im", subtype="message_changed", hidden=True),  # an edit
        message(channel_type="im", subtype="message_deleted"),
        message(channel_type="im", subtype="channel_join"),
        message(channel_type="im", user=None),
        message(
            channel_type="channel", thread_ts="9.0", text=f"<@{BOT}> again"
        ),  # app_mention has it
    ],
)
def test_messages_parley_ignores(event: dict[str, Any]) -> None:
    assert from_message(event, team="T1", bot_user_id=BOT) is None


def test_a_dm_is_answered_where_it_was_written() -> None:
    inbound = from_message(message(channel="D1", channel_type="im"), team="T1", bot_user_id=BOT)
    assert inbound is not None
    assert (inbound.route, inbound.reply_thread) == (Route.DIRECT, None)
    assert inbound.key(ThreadScope.THREAD) == ConversationKey("slack", "D1", "U1", "")
    target = inbound.target()
    assert (target.thread_ts, target.status_thread, target.team) == (None, "10.1", "T1")


def test_a_thread_reply_is_a_follow_up_candidate_in_its_thread() -> None:
    event = message(channel_type="channel", thread_ts="9.0", text="and then?")
    inbound = from_message(event, team="T1", bot_user_id=BOT)
    assert inbound is not None
    assert (inbound.route, inbound.reply_thread) == (Route.FOLLOW_UP, "9.0")
    assert inbound.key(ThreadScope.USER) == ConversationKey("slack", "C1", "U1", "9.0")
    assert inbound.key(ThreadScope.THREAD) == ConversationKey("slack", "C1", "", "9.0")
    assert inbound.target().status_thread is None


def test_file_shares_and_broadcast_replies_are_people_writing() -> None:
    shared = message(channel_type="im", subtype="file_share", text="", files=[{"id": "F1"}])
    inbound = from_message(shared, team="T1", bot_user_id=BOT)
    assert inbound is not None
    assert inbound.has_files
    assert inbound.text == ""
    broadcast = message(channel_type="channel", subtype="thread_broadcast", thread_ts="9.0")
    assert from_message(broadcast, team="T1", bot_user_id=BOT) is not None


def test_a_mention_starts_a_thread_under_itself() -> None:
    event = {"type": "app_mention", "channel": "C1", "user": "U1", "ts": "10.1"}
    inbound = from_mention(event | {"text": f"<@{BOT}> what is 2+2?"}, team="T1", bot_user_id=BOT)
    assert inbound is not None
    assert (inbound.route, inbound.reply_thread, inbound.text) == (
        Route.MENTION,
        "10.1",
        "what is 2+2?",
    )
    in_thread = from_mention(event | {"text": "x", "thread_ts": "9.0"}, team="T", bot_user_id=BOT)
    assert in_thread is not None
    assert in_thread.reply_thread == "9.0"


@pytest.mark.parametrize(
    "extra",
    [{"bot_id": "B9"}, {"user": BOT}, {"edited": {"ts": "11.0"}}, {"subtype": "bot_message"}],
)
def test_mentions_parley_ignores(extra: dict[str, Any]) -> None:
    event = {"type": "app_mention", "channel": "C1", "user": "U1", "ts": "10.1", "text": "hi"}
    assert from_mention(event | extra, team="T1", bot_user_id=BOT) is None


@pytest.mark.parametrize(
    ("slack", "plain"),
    [
        (f"<@{BOT}> hello", "hello"),
        ("ask <@U0BOB|bob> in <#C0DEV|dev>", "ask @U0BOB in #dev"),
        (
            "see <https://a.io/x?y=1&amp;z=2|the docs> or <https://b.io>",
            "see the docs (https://a.io/x?y=1&z=2) or https://b.io",
        ),
        ("<!here> 1 &lt; 2 &amp;&amp; 3 &gt; 2", "@here 1 < 2 && 3 > 2"),
        ("mail <mailto:a@b.c|a@b.c>", "mail a@b.c (mailto:a@b.c)"),
    ],
)
def test_slack_markup_is_undone(slack: str, plain: str) -> None:
    assert normalise_text(slack, BOT) == plain


def test_native_streaming_answers_dms_in_a_thread_of_the_one_dm_conversation() -> None:
    event = message(channel="D1", channel_type="im")
    inbound = from_message(event, team="T1", bot_user_id=BOT, dm_threads=True)
    assert inbound is not None
    assert inbound.reply_thread == "10.1"
    assert inbound.key(ThreadScope.USER) == ConversationKey("slack", "D1", "U1")
    assert inbound.target().thread_ts == inbound.target().status_thread == "10.1"


def test_a_reply_in_a_dm_thread_continues_the_dm_conversation() -> None:
    event = message(channel="D1", channel_type="im", thread_ts="10.1", ts="11.1")
    inbound = from_message(event, team="T1", bot_user_id=BOT, dm_threads=True)
    assert inbound is not None
    assert inbound.reply_thread == "10.1"
    assert inbound.key(ThreadScope.USER) == ConversationKey("slack", "D1", "U1")


def test_an_edit_is_read_with_its_version_and_an_unchanged_text_is_not_an_edit() -> None:
    original = message(channel="D1", channel_type="im")
    edited = {**original, "text": "new words", "edited": {"user": "U1", "ts": "12.0"}}
    changed: dict[str, Any] = {
        "type": "message",
        "subtype": "message_changed",
        "channel": "D1",
        "channel_type": "im",
        "hidden": True,
        "ts": "12.1",
        "message": edited,
        "previous_message": original,
    }
    edit = from_edit(changed, team="T1", bot_user_id=BOT)
    assert edit is not None
    inbound, version = edit
    assert (inbound.text, inbound.ts, version) == ("new words", "10.1", "12.0")
    unfurled = {**changed, "message": {**edited, "text": original["text"]}}
    assert from_edit(unfurled, team="T1", bot_user_id=BOT) is None
    by_bot = {**changed, "message": {**edited, "user": BOT}}
    assert from_edit(by_bot, team="T1", bot_user_id=BOT) is None
