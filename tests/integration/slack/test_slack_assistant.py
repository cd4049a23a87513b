"""Slack's assistant pane: greeting and prompts, status while reasoning, a title, a conversation
per thread, the viewed channel kept; DMs outside the pane work as before."""

from __future__ import annotations

import json

from bots.slack.app import PHRASES
from bots.slack.memory import SlackMemory
from core.phrases import Phrases
from tests.fakes.fake_slack import FakeSlack, wait_until
from tests.fakes.fake_vllm import Reply
from tests.integration.slack.conftest import RunningBot, StartBot
from tests.support.timing import eventually

DM = "D0USER1"
ALICE = "U0ALICE"
APP_TOKEN = "xapp-fake-app-token"


def user_turns(request: dict[str, object]) -> list[str]:
    """The user messages the model server received in one request."""
    messages = request["messages"]
    assert isinstance(messages, list)
    return [m["content"] for m in messages if m["role"] == "user"]


def pane_root(slack: FakeSlack) -> str:
    """The root message Slack makes when the pane opens a thread; its ts names the thread."""
    return str(slack.user_message(DM, ALICE, "", channel_type="im")["ts"])


async def open_thread(bot: RunningBot, *, socket: bool = False, context: str = "C0GENERAL") -> str:
    """The person opens a new assistant thread; returns its ts once Parley has greeted."""
    root = pane_root(bot.slack)
    event = bot.slack.assistant_thread_event(
        "assistant_thread_started", user=ALICE, channel=DM, thread_ts=root, context_channel=context
    )
    if socket:
        await bot.slack.push_event(event)
    else:
        assert (await bot.sender.event(event)).status == 200
    await wait_until(lambda: any(p["thread_ts"] == root for p in bot.slack.suggested_prompts))
    return root


async def ask(bot: RunningBot, root: str, text: str, count: int) -> None:
    """A question in the thread, answered (`count` bot messages in it then, greeting included)."""
    event = bot.slack.user_message(DM, ALICE, text, thread_ts=root, channel_type="im")
    assert (await bot.sender.event(event)).status == 200
    await bot.answered(DM, root, count=count)


async def test_a_thread_greets_offers_prompts_thinks_in_the_status_and_answers(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    root = await open_thread(bot)
    (greeting,) = bot.slack.bot_replies(DM, root)
    assert greeting.visible == Phrases().assistant_greeting
    (offered,) = bot.slack.suggested_prompts
    assert offered["title"] == Phrases().assistant_prompts_title
    assert 1 <= len(offered["prompts"]) <= 4
    assert all(p["title"] and p["message"] for p in offered["prompts"])

    bot.vllm.script(Reply(reasoning="two and two", answer="It is **4**."))
    await ask(bot, root, "What is  2+2?", count=2)
    answer = bot.slack.bot_replies(DM, root)[-1]
    assert answer.visible == "It is *4*."
    # no placeholder message: the first thing the answer's message ever showed was the answer
    assert not any("Thinking" in shown for shown in answer.history)
    shown = [(s["thread_ts"], s["status"]) for s in bot.slack.statuses]
    assert (root, PHRASES.status) in shown
    assert shown[-1] == (root, "")  # cleared when the turn ended
    assert bot.slack.titles == [{"channel_id": DM, "thread_ts": root, "title": "What is 2+2?"}]

    await ask(bot, root, "and times three?", count=3)
    assert user_turns(bot.vllm.requests[-1]) == ["What is  2+2?", "and times three?"]
    assert len(bot.slack.titles) == 1  # named once, by its first question


async def test_each_thread_is_its_own_conversation_apart_from_the_dm(start_bot: StartBot) -> None:
    bot = await start_bot()
    await bot.dm(ALICE, "My name is Ada")
    await bot.answered(DM, None)
    first = await open_thread(bot)
    await ask(bot, first, "I like tea", count=2)
    second = await open_thread(bot)
    await ask(bot, second, "What do I like?", count=2)
    assert user_turns(bot.vllm.requests[-1]) == ["What do I like?"]
    await ask(bot, first, "And what else?", count=3)
    assert user_turns(bot.vllm.requests[-1]) == ["I like tea", "And what else?"]
    await bot.dm(ALICE, "What is my name?")
    await bot.answered(DM, None, count=2)
    assert user_turns(bot.vllm.requests[-1]) == ["My name is Ada", "What is my name?"]


async def test_the_viewed_channel_is_kept_per_thread(start_bot: StartBot) -> None:
    bot = await start_bot()
    root = await open_thread(bot, context="C0GENERAL")
    memory = SlackMemory(bot.runtime.redis, bot.runtime.keys, ttl_seconds=60)
    assert json.loads(await memory.assistant_context(DM, root) or "{}") == {
        "channel_id": "C0GENERAL",
        "team_id": bot.slack.team_id,
    }
    changed = bot.slack.assistant_thread_event(
        "assistant_thread_context_changed",
        user=ALICE,
        channel=DM,
        thread_ts=root,
        context_channel="C0RANDOM",
    )
    assert (await bot.sender.event(changed)).status == 200

    async def kept() -> bool:
        return "C0RANDOM" in (await memory.assistant_context(DM, root) or "")

    await eventually(kept, what="the new context kept")
    assert bot.vllm.requests == []  # kept, not sent to the model


async def test_socket_mode_greets_and_answers_in_the_pane(start_bot: StartBot) -> None:
    bot = await start_bot(slack_app_token=APP_TOKEN, slack_signing_secret=None)
    root = await open_thread(bot, socket=True)
    event = bot.slack.user_message(DM, ALICE, "hello pane", thread_ts=root, channel_type="im")
    await bot.slack.push_event(event)
    replies = await bot.answered(DM, root, count=2)
    assert replies[-1].visible == "You said: hello pane"
    assert bot.slack.titles[-1]["title"] == "hello pane"


async def test_configured_prompts_are_offered(start_bot: StartBot) -> None:
    bot = await start_bot(
        slack_assistant_prompts="Summarise=Summarise this for me|What can you do?"
    )
    await open_thread(bot)
    assert bot.slack.suggested_prompts[-1]["prompts"] == [
        {"title": "Summarise", "message": "Summarise this for me"},
        {"title": "What can you do?", "message": "What can you do?"},
    ]


async def test_dms_outside_the_pane_keep_working_in_native_mode(start_bot: StartBot) -> None:
    bot = await start_bot(slack_stream_mode="native")
    await open_thread(bot)  # the pane is in use, beside the DM
    first = await bot.dm(ALICE, "hi")
    (reply,) = await bot.answered(DM, first["ts"])
    assert reply.visible == "You said: hi"
    follow_up = bot.slack.user_message(
        DM, ALICE, "and more?", thread_ts=first["ts"], channel_type="im"
    )
    assert (await bot.sender.event(follow_up)).status == 200
    await bot.answered(DM, first["ts"], count=2)
    assert user_turns(bot.vllm.requests[-1]) == ["hi", "and more?"]
    assert bot.slack.titles == []  # a DM thread is not the pane's


async def test_an_edited_dm_is_answered_again_with_the_pane_registered(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    await open_thread(bot)
    event = await bot.dm(ALICE, "What is the capital of Spain?")
    (reply,) = await bot.answered(DM, None)
    assert reply.visible == "You said: What is the capital of Spain?"
    edit = bot.slack.edit_event(event, "What is the capital of France?")
    assert (await bot.sender.event(edit)).status == 200
    await wait_until(lambda: len(bot.vllm.requests) == 2)
    await bot.idle()
    assert user_turns(bot.vllm.requests[-1]) == ["What is the capital of France?"]
    (reply,) = bot.slack.bot_replies(DM, None)
    assert reply.visible == "You said: What is the capital of France?"


async def test_regenerate_in_the_pane_thinks_in_the_status_not_a_placeholder(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    root = await open_thread(bot)
    slow = "let me think " * 150  # long enough that progress would show before the answer
    bot.vllm.script(Reply(reasoning=slow, answer="First."), Reply(reasoning=slow, answer="Second."))
    await ask(bot, root, "Say something", count=2)
    answer = bot.slack.bot_replies(DM, root)[-1]
    (button,) = [b for b in answer.buttons if str(b["text"]["text"]).startswith("🔄")]
    click = await bot.sender.action(
        button["action_id"], button["value"], user_id=ALICE, channel_id=DM, message=answer
    )
    assert click.status == 200
    await wait_until(lambda: bot.slack.bot_replies(DM, root)[-1].visible == "Second.")
    replies = bot.slack.bot_replies(DM, root)
    assert len(replies) == 2  # the greeting and the answer, written over in place
    assert not any("Thinking" in shown for reply in replies for shown in reply.history)
    assert len(bot.vllm.requests) == 2


async def test_a_question_edited_in_the_pane_is_answered_again_in_its_thread(
    start_bot: StartBot,
) -> None:
    bot = await start_bot()
    root = await open_thread(bot)
    await ask(bot, root, "I like tea", count=2)
    event = bot.slack.user_message(
        DM, ALICE, "What is the capital of Spain?", thread_ts=root, channel_type="im"
    )
    assert (await bot.sender.event(event)).status == 200
    await bot.answered(DM, root, count=3)
    edit = bot.slack.edit_event(event, "What is the capital of France?")
    assert (await bot.sender.event(edit)).status == 200
    await wait_until(lambda: len(bot.vllm.requests) == 3)
    await bot.idle()
    # The thread's own conversation, with the edited question in place of the old one.
    assert user_turns(bot.vllm.requests[-1]) == ["I like tea", "What is the capital of France?"]
    replies = bot.slack.bot_replies(DM, root)
    assert len(replies) == 3  # the greeting and two answers: the second written over in place
    assert replies[-1].visible == "You said: What is the capital of France?"
    assert not any("Thinking" in shown for shown in replies[-1].history)  # the pane's status
    last = bot.slack.statuses[-1]
    assert (last["thread_ts"], last["status"]) == (root, "")  # cleared when the turn ended
