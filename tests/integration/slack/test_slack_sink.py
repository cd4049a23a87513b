"""The sinks against the fake Web API through the real slack_sdk client; core errors out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from slack_sdk.web.async_client import AsyncWebClient

from bots.slack.native import NativeStreamSink
from bots.slack.pacing import Budget, BudgetRates, Budgets, SlackPacer
from bots.slack.replies import slack_limits
from bots.slack.sink import ReplyTarget, SlackSink
from core.errors import MessageGone, MessageRejected, PlatformError, RateLimited
from core.sink import Content, Segment, SegmentKind
from core.store.keys import KeySpace
from tests.fakes.fake_slack import FakeSlack

CHANNEL = "C0GENERAL"


class RecordingPacer:
    """A budget that never waits and remembers penalties (a test double of core.sink.Pacer)."""

    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float] = []

    async def acquire(self) -> None:
        self.acquired += 1

    def penalize(self, retry_after: float) -> None:
        self.penalties.append(retry_after)


def answer(text: str) -> Content:
    return (Segment(SegmentKind.ANSWER, text),)


def status(text: str) -> Content:
    return (Segment(SegmentKind.STATUS, text),)


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(post_limit=100, update_limit=100, update_window=1.0)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


def client_for(slack: FakeSlack, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token or slack.bot_token, base_url=slack.api_url, retry_handlers=[])


def thread_root(slack: FakeSlack, channel: str = CHANNEL) -> str:
    return str(slack.user_message(channel, "U0ALICE", "question")["ts"])


def update_sink(
    slack: FakeSlack, *, channel: str = CHANNEL, dm: bool = False, token: str | None = None
) -> tuple[SlackSink, RecordingPacer, RecordingPacer]:
    root = thread_root(slack, channel)
    target = ReplyTarget(
        slack.team_id, channel, None if dm else root, "U0ALICE", root if dm else None
    )
    channel_budget, workspace_budget = RecordingPacer(), RecordingPacer()
    pacer = SlackPacer(channel=channel_budget, workspace=workspace_budget)
    sink = SlackSink(client_for(slack, token), target, pacer=pacer, limits=slack_limits(3900))
    return sink, channel_budget, workspace_budget


def native_sink(slack: FakeSlack) -> tuple[NativeStreamSink, str]:
    root = thread_root(slack)
    target = ReplyTarget(slack.team_id, CHANNEL, root, "U0ALICE")
    pacer = SlackPacer(channel=RecordingPacer(), workspace=RecordingPacer())
    sink = NativeStreamSink(
        client_for(slack),
        target,
        pacer=pacer,
        limits=slack_limits(3900),
        update_budget=RecordingPacer(),
    )
    return sink, root


async def test_send_then_edit_and_an_unchanged_edit_is_free(slack: FakeSlack) -> None:
    sink, _, _ = update_sink(slack)
    ref = await sink.send(status("💭 Thinking…"))
    await sink.edit(ref, answer("**Hi** <there> & you"))
    await sink.edit(ref, answer("**Hi** <there> & you"), final=True)
    (message,) = slack.bot_messages()
    assert message.text == "*Hi* &lt;there&gt; &amp; you"
    assert message.visible == "*Hi* <there> & you"
    assert message.history == ["💭 Thinking…", "*Hi* &lt;there&gt; &amp; you"]
    assert len(slack.calls_to("chat.update")) == 1


async def test_a_deleted_message_is_gone(slack: FakeSlack) -> None:
    sink, _, _ = update_sink(slack)
    ref = await sink.send(answer("soon deleted"))
    slack.bot_messages()[0].deleted = True
    with pytest.raises(MessageGone):
        await sink.edit(ref, answer("more"))


async def test_429s_carry_retry_after_and_blame_the_right_budget(slack: FakeSlack) -> None:
    sink, channel_budget, workspace_budget = update_sink(slack)
    ref = await sink.send(answer("one"))
    slack.force_ratelimit("chat.update", 1.2)
    with pytest.raises(RateLimited) as update_limited:
        await sink.edit(ref, answer("two"))
    assert update_limited.value.retry_after == 2.0  # Slack sends whole seconds
    sink.pacer.penalize(update_limited.value.retry_after)
    assert workspace_budget.penalties == [2.0]

    slack.force_ratelimit("chat.postMessage", 0.5)
    with pytest.raises(RateLimited):
        await sink.send(answer("three"))
    sink.pacer.penalize(1.0)
    assert channel_budget.penalties == [1.0]  # a busy channel does not hold the workspace back


async def test_rejected_formatting_falls_back_to_plain_text_once(slack: FakeSlack) -> None:
    sink, _, _ = update_sink(slack)
    slack.force_error("chat.postMessage", "invalid_blocks")
    await sink.send(answer("**bold**"))
    assert slack.bot_messages()[0].text == "**bold**"
    assert slack.bot_messages()[0].mrkdwn is False
    slack.force_error("chat.postMessage", "msg_too_long", times=2)
    with pytest.raises(MessageRejected):
        await sink.send(answer("still too long"))


async def test_slack_enforces_its_length_limit(slack: FakeSlack) -> None:
    sink, _, _ = update_sink(slack)
    with pytest.raises(MessageRejected):
        await sink.send(answer("x" * 40_001))


async def test_other_failures_are_platform_errors(slack: FakeSlack) -> None:
    sink, _, _ = update_sink(slack, token="xoxb-revoked")
    with pytest.raises(PlatformError, match="invalid_auth"):
        await sink.send(answer("hi"))
    sink, _, _ = update_sink(slack)
    await slack.close()
    with pytest.raises(PlatformError):
        await sink.send(answer("nobody listens"))


async def test_typing_sets_the_assistant_status_only_in_dms(slack: FakeSlack) -> None:
    sink, _, _ = update_sink(slack, channel="D0USER1", dm=True)
    await sink.typing()
    channel_sink, _, _ = update_sink(slack)
    await channel_sink.typing()
    assert [s["channel_id"] for s in slack.statuses] == ["D0USER1"]
    await sink.close()
    assert [s["status"] for s in slack.statuses] == ["is thinking…", ""]  # cleared at the end
    slack.force_error("assistant.threads.setStatus", "not_allowed_token_type")
    await sink.typing()  # best effort: no error


async def test_native_appends_only_what_is_new_and_stops_when_final(slack: FakeSlack) -> None:
    sink, root = native_sink(slack)
    ref = await sink.send(status("💭 Thinking…"))
    await sink.edit(ref, status("💭 Thinking… 3 s"))  # status lines never enter the stream
    await sink.edit(ref, answer("Hello wor"))
    await sink.edit(ref, answer("Hello world, and more"))
    await sink.edit(ref, answer("Hello world, and more text."), final=True)
    (message,) = slack.bot_replies(CHANNEL, root)
    assert message.visible == "Hello world, and more text."
    assert message.history == ["", "Hello ", "Hello world, and ", "Hello world, and more text."]
    assert not message.streaming
    appends = [c.args["markdown_text"] for c in slack.calls_to("chat.appendStream")]
    assert all(not a[0].isspace() for a in appends)  # Slack may drop leading whitespace


async def test_native_close_lands_the_held_back_word(slack: FakeSlack) -> None:
    sink, root = native_sink(slack)
    ref = await sink.send(answer("All of this"))
    assert slack.bot_replies(CHANNEL, root)[0].text == "All of "
    await sink.close()
    (message,) = slack.bot_replies(CHANNEL, root)
    assert (message.visible, message.streaming) == ("All of this", False)
    await sink.edit(ref, answer("All of this"), final=True)  # nothing left to do
    assert len(slack.calls_to("chat.stopStream")) == 1


async def test_native_rewrites_through_chat_update_when_text_changes(slack: FakeSlack) -> None:
    sink, root = native_sink(slack)
    ref = await sink.send(answer("First draft of it"))
    await sink.edit(ref, answer("Second take"), final=True)
    (message,) = slack.bot_replies(CHANNEL, root)
    assert message.visible == "Second take"
    assert [c.method for c in slack.calls][-2:] == ["chat.stopStream", "chat.update"]


async def test_budgets_share_keys_per_workspace_and_channel() -> None:
    made: list[tuple[str, float]] = []

    def make(key: str, interval: float) -> RecordingPacer:
        made.append((key, interval))
        return RecordingPacer()

    budgets = Budgets(make, BudgetRates(1.2, 0.6, 1.0), KeySpace())
    budgets.for_reply("T1", "C1", Budget.UPDATE)
    budgets.for_reply("T1", "C2", Budget.STREAM)
    assert made == [
        ("parley:{slpace|T1}:channel:C1", 1.0),
        ("parley:{slpace|T1}:chat.update", 1.2),
        ("parley:{slpace|T1}:channel:C2", 1.0),
        ("parley:{slpace|T1}:chat.appendStream", 0.6),
    ]
