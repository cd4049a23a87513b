"""The command suite: every scenario runs on Telegram and on Slack (test_tg_/test_slack_commands).

Each scenario is written once, in terms of what people do in a messenger (tests/support/
messengers.py), and asserts on what they see, on the model requests and on the store.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import texts
from core.answer import CONTINUE_PROMPT
from core.commands import CommandName
from core.conversation import ConversationKey
from core.surfaces import SURFACES
from tests.fakes.fake_slack import wait_until
from tests.fakes.fake_vllm import Reply
from tests.support.messengers import CHINESE, Messenger

Scenario = Callable[[Messenger], Awaitable[None]]
PERSONAS = {"personas_file": str(Path(__file__).parents[1] / "support" / "personas.yaml")}
TUTOR_TITLE = "Tutor <@U0ALICE> [me](tg://user?id=1)"  # hostile on purpose: must stay text


@dataclass(frozen=True)
class Case:
    """A scenario and the core settings it needs."""

    run: Scenario
    core: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run.__name__


async def one_quota_minute(needed: float = 15.0) -> None:
    """Quotas count per UTC minute: start where ``needed`` seconds of this minute remain."""
    left = 60 - time.time() % 60
    if left < needed:
        await asyncio.sleep(left + 0.1)


def user_turns(request: dict[str, Any]) -> list[str]:
    """The user messages one model request carried."""
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def conversations(m: Messenger) -> int:
    """How many conversations the store holds."""
    return (await m.service.runner.store.stats()).conversations


async def help_shows_admin_commands_only_to_admins(m: Messenger) -> None:
    surface = SURFACES[m.name]
    everyone = await m.command("alice", CommandName.HELP)
    assert surface.bare(CommandName.RESET) in everyone
    assert surface.bare(CommandName.USAGE) in everyone
    assert surface.bare(CommandName.RESET_ALL) not in everyone
    admin = await m.command("admin", CommandName.HELP)
    assert surface.bare(CommandName.RESET_ALL) in admin
    assert surface.bare(CommandName.AUDIT) in admin


async def admin_commands_are_refused_to_others_and_change_nothing(m: Messenger) -> None:
    await m.say("alice", "keep this")
    await m.say("bob", "mine too")
    bob = m.user_id("bob")
    for name, args in (
        (CommandName.STATS, ()),
        (CommandName.RESET_USER, (bob,)),
        (CommandName.RESET_CHAT, ()),
        (CommandName.RESET_ALL, ()),
        (CommandName.ALLOW, ("telegram:1",)),
        (CommandName.DENY, (bob,)),
        (CommandName.ACCESS, ()),
        (CommandName.AUDIT, ()),
    ):
        assert await m.command("alice", name, *args) == texts.NOT_ADMIN, name
    assert not m.question_has_buttons()
    assert await conversations(m) == 2
    await m.say("bob", "still there?")
    assert user_turns(m.vllm.requests[-1]) == ["mine too", "still there?"]


async def reset_forgets_this_conversation(m: Messenger) -> None:
    await m.say("alice", "remember me")
    assert await m.command("alice", CommandName.RESET) == texts.RESET_DONE
    await m.say("alice", "who am I?")
    assert user_turns(m.vllm.requests[-1]) == ["who am I?"]
    await m.command("alice", CommandName.RESET)
    assert await m.command("alice", CommandName.RESET) == texts.RESET_NOTHING


async def stop_with_nothing_running_says_so(m: Messenger) -> None:
    await m.say("alice", "hello")
    assert await m.command("alice", CommandName.STOP) == texts.NOTHING_RUNNING


async def retry_answers_again_and_replaces_the_answer(m: Messenger) -> None:
    m.vllm.script(Reply("r", "first answer"), Reply("r", "second answer"))
    await m.say("alice", "question one")
    await m.command("alice", CommandName.RETRY)
    assert m.answers("alice")[-1] == "second answer"
    assert user_turns(m.vllm.requests[1]) == ["question one"]
    await m.say("alice", "question two")
    request = m.vllm.requests[2]["messages"]
    assert user_turns(m.vllm.requests[2]) == ["question one", "question two"]
    assert [x["content"] for x in request if x["role"] == "assistant"] == ["second answer"]


async def retry_with_nothing_to_retry_says_so(m: Messenger) -> None:
    await m.command("alice", CommandName.RETRY)
    assert m.answers("alice")[-1] == m.service.phrases.nothing_to_retry
    assert m.vllm.requests == []


async def retry_is_refused_once_access_is_denied(m: Messenger) -> None:
    await m.say("alice", "hello")
    denied = await m.command("admin", CommandName.DENY, m.user_id("alice"))
    assert denied.startswith("Denied")
    await m.command("alice", CommandName.RETRY)
    await m.command("alice", CommandName.RETRY)
    assert len(m.vllm.requests) == 1  # neither retry reached the model
    assert m.service.phrases.refused in m.answers("alice")
    allowed = await m.command("admin", CommandName.ALLOW, m.user_id("alice"))
    assert allowed.startswith("Allowed")
    await m.command("alice", CommandName.RETRY)
    assert len(m.vllm.requests) == 2


async def retry_counts_as_a_message_for_the_quota(m: Messenger) -> None:
    await one_quota_minute()
    await m.say("alice", "one")
    await m.command("alice", CommandName.RETRY)
    await m.command("alice", CommandName.RETRY)
    await m.command("alice", CommandName.RETRY)
    assert len(m.vllm.requests) == 2  # one message and one retry under a quota of two
    refusals = [a for a in m.answers("alice") if "You've reached your limit" in a]
    assert len(refusals) == 1  # told once a minute, not on every refused try


async def forget_deletes_my_conversations_and_counters(m: Messenger) -> None:
    await one_quota_minute()
    await m.say("alice", "private words")
    await m.say("bob", "bob's words")
    before = await m.command("alice", CommandName.USAGE)
    assert "Messages this minute: 1" in before
    said = await m.command("alice", CommandName.FORGET)
    assert said.startswith("Deleted 1 conversation:")
    assert await conversations(m) == 1  # bob's stays
    after = await m.command("alice", CommandName.USAGE)
    assert "Messages this minute: 0" in after
    await m.say("alice", "who am I?")
    assert user_turns(m.vllm.requests[-1]) == ["who am I?"]


async def usage_shows_my_numbers_and_what_is_left(m: Messenger) -> None:
    await one_quota_minute()
    await m.say("alice", "hello")
    await m.say("alice", "again")
    mine = await m.command("alice", CommandName.USAGE)
    assert "Messages this minute: 2" in mine
    assert "3 of 5 messages left this minute" in mine
    tokens = int(re.search(r"Tokens today \(UTC\): ([\d,]+)", mine).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert tokens > 0
    assert "no limits" in await m.command("admin", CommandName.USAGE)


async def stats_show_memory_and_usage_with_tokens(m: Messenger) -> None:
    await m.say("alice", "hello there")
    await m.say("bob", "hi")
    stats = await m.command("admin", CommandName.STATS)
    assert "Conversations: 2 (4 messages)" in stats
    assert "2 users, 2 turns" in stats
    tokens_in = re.search(r"2 turns, ([\d,]+) tokens in, ([\d,]+) out", stats)
    assert tokens_in is not None
    assert int(tokens_in.group(1).replace(",", "")) > 0
    assert int(tokens_in.group(2).replace(",", "")) > 0


async def reset_user_and_reset_chat(m: Messenger) -> None:
    await m.say("alice", "mine")
    await m.say("bob", "his")
    alice = m.user_id("alice")
    assert await m.command("admin", CommandName.RESET_USER, alice) == (
        f"Removed 1 conversation of user {alice}."
    )
    assert await conversations(m) == 1
    wrong = await m.command("admin", CommandName.RESET_USER, "not-a-user!")
    assert "Usage:" in wrong
    assert (await m.command("admin", CommandName.RESET_USER)).startswith("Usage:")
    assert await conversations(m) == 1
    entries = await m.service.commands.operations.audit_log.recent()  # type: ignore[union-attr]
    # The same shape from every platform (and `parley admin`): actor, action, target, detail.
    admin = m.user_id("admin")
    assert (entries[0].actor, entries[0].action, entries[0].target, entries[0].detail) == (
        f"{m.name}:{admin}",
        "reset-user",
        f"{m.name}:{alice}",
        "1",
    )


async def reset_all_asks_and_only_the_asker_confirms(m: Messenger) -> None:
    await m.say("alice", "one")
    await m.say("bob", "two")
    question = await m.command("admin", CommandName.RESET_ALL)
    assert "every conversation" in question
    assert m.question_has_buttons()
    assert await conversations(m) == 2  # nothing happens before the answer
    assert texts.ONLY_ASKER in await m.press("alice", yes=True)
    assert texts.ONLY_ASKER in await m.press("admin2", yes=True)  # another admin, not the asker
    assert m.question_has_buttons()
    assert await conversations(m) == 2
    done = await m.press("admin", yes=True)
    assert done == "Deleted all 2 conversations."
    assert m.question_text() == "Deleted all 2 conversations."
    assert not m.question_has_buttons()
    assert await conversations(m) == 0


async def reset_all_cancelled_changes_nothing(m: Messenger) -> None:
    await m.say("alice", "one")
    await m.command("admin", CommandName.RESET_ALL)
    assert await m.press("admin", yes=False) == texts.CANCELLED
    assert m.question_text() == texts.CANCELLED
    assert await conversations(m) == 1


async def reset_all_confirmation_expires(m: Messenger) -> None:
    await m.say("alice", "one")
    await m.command("admin", CommandName.RESET_ALL)
    await asyncio.sleep(1.5)  # CONFIRM_SECONDS=1 for this scenario
    said = await m.press("admin", yes=True)
    assert said.startswith("This confirmation expired")
    assert await conversations(m) == 1


def first_user_message(request: dict[str, Any]) -> str:
    """What the model was told first (instructions are folded into it)."""
    first = request["messages"][0]
    assert first["role"] == "user", request["messages"]
    return str(first["content"])


def no_system_role(request: dict[str, Any]) -> bool:
    """R1 takes no system message."""
    return all(m["role"] in ("user", "assistant") for m in request["messages"])


async def persona_switch_changes_what_the_model_is_sent(m: Messenger) -> None:
    listing = await m.command("alice", CommandName.PERSONA)
    assert "Persona here: Assistant" in listing
    assert m.choices() == ["✓ Assistant", "Concise", TUTOR_TITLE]
    said = await m.command("alice", CommandName.PERSONA, "concise")
    assert said == "Persona here: Concise. Short answers."
    await m.say("alice", "what is a prime?")
    request = m.vllm.requests[-1]
    assert no_system_role(request)
    assert first_user_message(request) == "Answer in one sentence.\n\nwhat is a prime?"
    assert (request["temperature"], request["top_p"]) == (0.5, 0.9)
    await m.say("bob", "hello")  # bob's private chat keeps the default
    request = m.vllm.requests[-1]
    assert first_user_message(request) == "hello"
    assert (request["temperature"], request["top_p"]) == (0.6, 0.95)
    assert "Persona here: Concise" in await m.command("alice", CommandName.PERSONA)
    assert m.choices() == ["Assistant", "✓ Concise", TUTOR_TITLE]


async def persona_button_switches_and_titles_stay_text(m: Messenger) -> None:
    await m.command("alice", CommandName.PERSONA)
    said = await m.pick("alice", TUTOR_TITLE)
    assert said.startswith("Persona here: Tutor <@U0ALICE> me")  # the link's text, no link
    await m.say("alice", "explain recursion")
    request = m.vllm.requests[-1]
    assert first_user_message(request) == (
        "You are a patient tutor.\nExplain step by step.\n\nexplain recursion"
    )
    assert request["max_tokens"] <= 2048
    for raw in m.raw_replies():  # untrusted titles never become mentions or user links
        if m.name == "slack":  # Slack's markup for a mention, @here and a link
            assert "<@U0ALICE>" not in raw
            assert "<!here>" not in raw
            assert "<tg://" not in raw
        assert '"url": "tg://' not in raw  # a Telegram text_link entity
        assert "text_mention" not in raw


async def persona_survives_reset_and_forget_removes_it(m: Messenger) -> None:
    await m.command("alice", CommandName.PERSONA, "concise")
    await m.command("alice", CommandName.INSTRUCTIONS, "Call", "me", "Ada.")
    await m.say("alice", "one")
    assert await m.command("alice", CommandName.RESET) == texts.RESET_DONE
    await m.say("alice", "two")
    request = m.vllm.requests[-1]
    assert first_user_message(request) == "Answer in one sentence.\n\nCall me Ada.\n\ntwo"
    await m.command("alice", CommandName.FORGET)
    await m.say("alice", "three")
    request = m.vllm.requests[-1]
    assert first_user_message(request) == "three"
    assert request["temperature"] == 0.6
    assert "Persona here: Assistant" in await m.command("alice", CommandName.PERSONA)


async def unknown_persona_gets_the_list(m: Messenger) -> None:
    said = await m.command("alice", CommandName.PERSONA, "pirate")
    assert said.startswith("There is no persona called 'pirate'.")
    assert "Concise (concise) — Short answers." in said
    assert len(m.choices()) == 3


async def instructions_are_set_shown_and_cleared(m: Messenger) -> None:
    shown = await m.command("alice", CommandName.INSTRUCTIONS)
    assert shown.startswith("This chat has no instructions of its own.")
    said = await m.command("alice", CommandName.INSTRUCTIONS, "Answer", "in", "French.")
    assert said == texts.INSTRUCTIONS_SAVED
    assert "Answer in French." in await m.command("alice", CommandName.INSTRUCTIONS)
    await m.say("alice", "hello")
    request = m.vllm.requests[-1]
    assert no_system_role(request)
    assert first_user_message(request) == "Answer in French.\n\nhello"
    long = "x" * 2001
    refused = await m.command("alice", CommandName.INSTRUCTIONS, long)
    assert refused.startswith("Instructions can be at most 2,000 characters; these have 2,001.")
    cleared = await m.command("alice", CommandName.INSTRUCTIONS, "clear")
    assert cleared == texts.INSTRUCTIONS_CLEARED
    assert await m.command("alice", CommandName.INSTRUCTIONS, "clear") == texts.INSTRUCTIONS_NONE
    await m.say("alice", "again")
    assert first_user_message(m.vllm.requests[-1]) == "hello"  # the oldest turn, unprefixed


async def stats_count_chats_per_persona(m: Messenger) -> None:
    await m.command("alice", CommandName.PERSONA, "concise")
    await m.command("bob", CommandName.PERSONA, "concise")
    await m.command("admin", CommandName.PERSONA, "tutor")
    stats = await m.command("admin", CommandName.STATS)
    assert "Personas (chats that picked one)" in stats
    assert "• concise: 2" in stats
    assert "• tutor: 1" in stats


async def a_chinese_speaker_is_answered_in_chinese_from_the_start(m: Messenger) -> None:
    await one_quota_minute()
    first = CommandName.START if m.name == "telegram" else CommandName.HELP
    welcome = await m.command(CHINESE, first)
    english = await m.command("alice", first)
    if first is CommandName.START:
        assert welcome.startswith("👋 你好，我是 Parley")
        assert english.startswith("👋 Hi, I'm Parley")
    surface = SURFACES[m.name]
    help_zh = await m.command(CHINESE, CommandName.HELP)
    assert f"{surface.bare(CommandName.RESET)} — 忘掉我们在这里的对话" in help_zh
    assert "Forget our conversation here" not in help_zh
    assert "Forget our conversation here" in await m.command("alice", CommandName.HELP)
    await m.say(CHINESE, "你好")
    await m.say(CHINESE, "再来一次")  # over QUOTA_MESSAGES_PER_MINUTE=1: refused, in Chinese
    assert any(a.startswith("你已达到使用上限（每分钟消息数）") for a in m.answers(CHINESE))
    await m.say("alice", "hello")
    await m.say("alice", "again")
    assert any(
        a.startswith("You've reached your limit (messages per minute)") for a in m.answers("alice")
    )
    assert len(m.vllm.requests) == 2
    assert (
        await m.command(CHINESE, CommandName.STATS)
        == "抱歉，只有机器人的管理员才能这样做。没有做任何更改。"
    )


async def language_overrides_the_platform_and_forget_removes_it(m: Messenger) -> None:
    shown = await m.command("alice", CommandName.LANGUAGE)
    assert shown.startswith("Language: English (your language setting on ")
    assert m.choices() == ["✓ English", "简体中文"]
    assert (
        await m.command("alice", CommandName.LANGUAGE, "zh-CN")
        == "好的：从现在起我用简体中文和你交流。"
    )
    assert "查看或选择我使用的语言" in await m.command("alice", CommandName.HELP)
    assert (await m.command("alice", CommandName.LANGUAGE)).startswith(
        "语言： 简体中文（你选择的）"
    )
    assert m.choices() == ["English", "✓ 简体中文"]
    assert await m.command("alice", CommandName.RESET) == "这里没有需要忘掉的内容。"
    forgotten = await m.command("alice", CommandName.FORGET)
    assert forgotten.startswith("已删除 0 段对话")  # said in the language chosen until now
    assert await m.command("alice", CommandName.RESET) == texts.RESET_NOTHING  # English again
    said = await m.pick(CHINESE, "English")  # a button picks it too
    assert said == "Done: from now on I speak English with you."
    assert await m.command(CHINESE, CommandName.RESET) == texts.RESET_NOTHING
    back = await m.command(CHINESE, CommandName.LANGUAGE, "auto")
    assert back.startswith("好的：我重新跟随你在 ")
    assert back.endswith("的语言设置（简体中文）。")
    unknown = await m.command("alice", CommandName.LANGUAGE, "klingon")
    assert unknown.startswith("I don't speak 'klingon' yet.")


async def stats_count_conversations_per_language(m: Messenger) -> None:
    await m.say("alice", "hello")
    await m.say("bob", "hi")
    await m.say(CHINESE, "你好")
    await m.say(CHINESE, "还在吗")  # the same conversation: counted once
    stats = await m.command("admin", CommandName.STATS)
    assert "• English: 2 today, 2 in total" in stats
    assert "• 简体中文: 1 today, 1 in total" in stats


async def history(m: Messenger, person: str) -> list[str]:
    """The person's private conversation as stored."""
    key = ConversationKey(m.name, _private_chat(m, person), m.user_id(person))
    return [message.content for message in await m.service.runner.store.load(key)]


def _private_chat(m: Messenger, person: str) -> str:
    """The id of the person's private chat with the bot on this platform."""
    return m.user_id(person) if m.name == "telegram" else f"D{m.user_id(person)}"


async def stop_button_keeps_what_was_shown_and_stops_the_model(m: Messenger) -> None:
    m.vllm.token_interval = 0.02
    m.vllm.script(Reply("r", " ".join(f"w{i}" for i in range(3000))))
    await m.send("alice", "talk a lot")
    await wait_until(
        lambda: (
            bool(m.answers("alice"))
            and "w3" in m.answers("alice")[-1]
            and m.answer_buttons("alice") == ["⏹ Stop"]
        ),
        timeout=30,
    )
    assert await m.press_answer("alice", "⏹") == ""
    shown = m.answers("alice")[-1]
    assert shown.endswith("⏹ Stopped."), shown
    assert "w2999" not in shown
    assert m.vllm.aborted == 1  # the model request was closed, not left to run
    assert m.answer_buttons("alice") == ["🔄 Regenerate"]
    stored = await history(m, "alice")
    assert stored[0] == "talk a lot"
    assert stored[1] in shown


async def regenerate_replaces_the_answer_in_place(m: Messenger) -> None:
    m.vllm.script(Reply("r", "first answer"), Reply("r", "second answer"))
    await m.say("alice", "question one")
    assert m.answer_buttons("alice") == ["🔄 Regenerate"]
    before = len(m.answers("alice"))
    assert await m.press_answer("alice", "🔄") == ""
    assert m.answers("alice")[-1] == "second answer"
    assert len(m.answers("alice")) == before  # written over the same message
    assert user_turns(m.vllm.requests[1]) == ["question one"]
    assert await history(m, "alice") == ["question one", "second answer"]
    assert m.answer_buttons("alice") == ["🔄 Regenerate"]


async def only_the_asker_or_an_admin_may_press(m: Messenger) -> None:
    await m.say("alice", "question one")
    shown = await m.press_answer("bob", "🔄", under="alice", refused=True)
    assert shown == m.service.phrases.not_yours
    assert len(m.vllm.requests) == 1  # nothing reached the model
    await m.press_answer("admin", "🔄", under="alice")  # an admin may
    assert len(m.vllm.requests) == 2
    assert await history(m, "alice") == ["question one", "You said: question one"]


async def continue_goes_on_where_the_token_limit_cut(m: Messenger) -> None:
    m.vllm.script(Reply("r", " ".join(f"a{i}" for i in range(200))), Reply("r", "and the rest."))
    await m.say("alice", "a long one")
    assert m.answer_buttons("alice") == ["🔄 Regenerate", "➡ Continue"]
    cut = (await history(m, "alice"))[1]
    await m.press_answer("alice", "➡")
    request = m.vllm.requests[1]["messages"]
    assert [x["content"] for x in request if x["role"] == "assistant"] == [cut]
    assert user_turns(m.vllm.requests[1])[-1] == CONTINUE_PROMPT
    question, whole = await history(m, "alice")
    assert question == "a long one"
    assert whole.startswith(cut)
    assert whole.endswith("and the rest.")
    assert not whole[len(cut) : -len("and the rest.")].strip()
    assert m.answers("alice")[-1].startswith(cut)
    assert m.answers("alice")[-1].endswith("and the rest.")


async def an_edited_question_is_answered_again_once(m: Messenger) -> None:
    await m.say("alice", "what is 2+2")
    before = len(m.answers("alice"))
    await m.edit_last("alice", "what is 3+3")
    assert m.answers("alice")[-1] == "You said: what is 3+3"
    assert len(m.answers("alice")) == before  # in place
    assert await history(m, "alice") == ["what is 3+3", "You said: what is 3+3"]
    await m.edit_last("alice", "what is 3+3", again=True)  # the same edit delivered again
    assert len(m.vllm.requests) == 2
    await m.say("alice", "next")
    await m.edit_last("alice", "next!")  # the newest question may be edited again
    assert len(m.vllm.requests) == 4
    assert (await history(m, "alice"))[-2:] == ["next!", "You said: next!"]


CASES = [
    Case(help_shows_admin_commands_only_to_admins),
    Case(admin_commands_are_refused_to_others_and_change_nothing),
    Case(reset_forgets_this_conversation),
    Case(stop_with_nothing_running_says_so),
    Case(retry_answers_again_and_replaces_the_answer),
    Case(retry_with_nothing_to_retry_says_so),
    Case(retry_is_refused_once_access_is_denied),
    Case(retry_counts_as_a_message_for_the_quota, {"quota_messages_per_minute": 2}),
    Case(forget_deletes_my_conversations_and_counters),
    Case(usage_shows_my_numbers_and_what_is_left, {"quota_messages_per_minute": 5}),
    Case(stats_show_memory_and_usage_with_tokens),
    Case(reset_user_and_reset_chat),
    Case(reset_all_asks_and_only_the_asker_confirms),
    Case(reset_all_cancelled_changes_nothing),
    Case(reset_all_confirmation_expires, {"confirm_seconds": 1}),
    Case(persona_switch_changes_what_the_model_is_sent, PERSONAS),
    Case(persona_button_switches_and_titles_stay_text, PERSONAS),
    Case(persona_survives_reset_and_forget_removes_it, PERSONAS),
    Case(unknown_persona_gets_the_list, PERSONAS),
    Case(instructions_are_set_shown_and_cleared, PERSONAS),
    Case(stats_count_chats_per_persona, PERSONAS),
    Case(a_chinese_speaker_is_answered_in_chinese_from_the_start, {"quota_messages_per_minute": 1}),
    Case(language_overrides_the_platform_and_forget_removes_it),
    Case(stats_count_conversations_per_language),
    Case(stop_button_keeps_what_was_shown_and_stops_the_model),
    Case(regenerate_replaces_the_answer_in_place),
    Case(only_the_asker_or_an_admin_may_press),
    Case(continue_goes_on_where_the_token_limit_cut, {"llm_max_tokens": 120}),
    Case(an_edited_question_is_answered_again_once),
]
