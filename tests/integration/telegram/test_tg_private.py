"""Private chats: streamed replies end with exactly the model's answer, within every limit."""

from __future__ import annotations

from bots.telegram.render import render
from core.sink import Segment, SegmentKind
from tests.fakes.fake_telegram import MAX_TEXT_UTF16, FakeTelegram, utf16_len
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.integration.telegram.conftest import BotFactory, idle

REASONING = "SECRET-REASONING: the user greets me, so I should greet back politely."


def squeeze(text: str) -> str:
    """Text without whitespace: what must survive rollover and Telegram's trimming intact."""
    return "".join(text.split())


def long_answer() -> str:
    """About 12,000 characters: prose with emoji, short code blocks and one code block longer
    than a message, so the reply must roll over outside and inside a fence."""
    parts = ["# A long answer 📌\n"]
    for i in range(14):
        parts.append(f"Paragraph {i} 😀: " + " ".join(f"word{i}_{j} ✨" for j in range(40)) + "\n")
        if i % 4 == 1:
            parts.append(f"```python\ndef f{i}(x):\n    return x < {i} and x > -{i}  # 👍🏽\n```\n")
    parts.append(
        "```text\n" + "\n".join(f"line {k:04d} 🧪 " + "x" * 40 for k in range(100)) + "\n```\n"
    )
    parts.append("**The end.** 🎉")
    answer = "\n".join(parts)
    assert 11_000 <= len(answer) <= 13_500, len(answer)
    return answer


async def test_final_visible_text_is_the_answer(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user("Alice")
    await telegram.private_text(alice, "hello there")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == ["You said: hello there"]
    assert "typing" in telegram.state(alice.id).actions
    assert not telegram.errors()


async def test_markdown_arrives_as_entities(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    vllm.script(Reply(reasoning="r", answer="Use **bold** and `code`, then x<y."))
    await telegram.private_text(alice, "format please")
    await idle(bot, telegram)
    message = telegram.last_bot_message(alice.id)
    assert message.text == "Use bold and code, then x<y."
    assert {e["type"] for e in message.entities} == {"bold", "code"}


async def test_no_reasoning_is_shown_in_progress_mode(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    vllm.token_interval = 0.01  # reasoning takes a while: the status line must show meanwhile
    bot = await start_bot(core={"show_reasoning": "progress"})
    alice = telegram.new_user()
    vllm.script(Reply(reasoning=REASONING * 3, answer="Hello to you too!"))
    await telegram.private_text(alice, "hi")
    await idle(bot, telegram)
    (message,) = telegram.bot_messages(alice.id)
    assert message.text == "Hello to you too!"
    shown = [version.text for version in message.history]
    assert any(text.startswith("💭 Thinking") for text in shown), shown
    assert not any("SECRET-REASONING" in text for text in shown)


async def test_collapsed_mode_puts_reasoning_in_an_expandable_blockquote(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot(core={"show_reasoning": "collapsed"})
    alice = telegram.new_user()
    vllm.script(Reply(reasoning=REASONING, answer="Hello!"))
    await telegram.private_text(alice, "hi")
    await idle(bot, telegram)
    message = telegram.last_bot_message(alice.id)
    assert message.text.startswith("Hello!\n\n")
    (quote,) = [e for e in message.entities if e["type"] == "expandable_blockquote"]
    quoted = message.text.encode("utf-16-le")[
        quote["offset"] * 2 : (quote["offset"] + quote["length"]) * 2
    ]
    assert quoted.decode("utf-16-le") == REASONING
    # While streaming, the reasoning never showed outside the final collapsed quote.
    assert all("SECRET-REASONING" not in v.text for v in message.history[:-1])


async def test_a_12000_character_answer_arrives_whole_in_consecutive_messages(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    answer = long_answer()
    vllm.script(Reply(reasoning="Plan a long answer.", answer=answer))
    await telegram.private_text(alice, "write a lot")
    await idle(bot, telegram, timeout=60)
    messages = telegram.bot_messages(alice.id)
    assert len(messages) >= 3
    assert all(utf16_len(m.text) <= MAX_TEXT_UTF16 for m in messages)
    ids = [m.message_id for m in messages]
    assert ids == sorted(ids)
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    shown = "".join(m.text for m in messages)
    expected = render((Segment(SegmentKind.ANSWER, answer),)).text
    assert squeeze(shown) == squeeze(expected)  # nothing lost, nothing twice
    assert sum(1 for m in messages for e in m.entities if e["type"] == "pre") >= 5
    assert not telegram.errors()


async def test_forced_retry_after_mid_stream_still_ends_with_the_answer(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    vllm.token_interval = 0.004
    bot = await start_bot()
    alice = telegram.new_user()
    answer = "Counting: " + " ".join(f"n{i}" for i in range(400)) + " done."
    vllm.script(Reply(reasoning="Count.", answer=answer))
    await telegram.private_text(alice, "count")
    await telegram.wait_for(
        lambda: any(m.text.startswith("Counting") for m in telegram.bot_messages(alice.id)),
        what="the answer to start",
    )
    telegram.force_retry_after(alice.id, 1)
    await idle(bot, telegram, timeout=30)
    assert telegram.bot_texts(alice.id) == [answer]
    assert telegram.errors(code=429), "the forced flood wait was never hit"
    assert not telegram.flood_errors()


async def test_a_deleted_reply_continues_in_a_new_message(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    vllm.token_interval = 0.004
    bot = await start_bot()
    alice = telegram.new_user()
    answer = "Listing: " + " ".join(f"item{i}" for i in range(300)) + " end."
    vllm.script(Reply(reasoning="List.", answer=answer))
    await telegram.private_text(alice, "list")
    await telegram.wait_for(
        lambda: any(m.text.startswith("Listing") for m in telegram.bot_messages(alice.id)),
        what="the answer to start",
    )
    first = telegram.last_bot_message(alice.id)
    telegram.delete_message(alice.id, first.message_id)
    await idle(bot, telegram, timeout=30)
    assert telegram.bot_texts(alice.id) == [answer]
    assert telegram.last_bot_message(alice.id).message_id != first.message_id
    assert telegram.errors(method="editMessageText")  # "message to edit not found", once


async def test_non_text_gets_a_short_note_in_private(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    chat = telegram.private_chat(alice)
    await telegram.media(chat, alice, "sticker")
    await telegram.media(chat, alice, "voice")
    await idle(bot, telegram)
    assert (
        telegram.bot_texts(alice.id)
        == ["I can read text only. Please send your question as a text message."] * 2
    )
    assert not vllm.requests
    await telegram.media(chat, alice, "photo", caption="what do you think?")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id)[-1] == "You said: what do you think?"


async def test_draft_mode_streams_a_native_draft_then_sends_the_answer(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    vllm.token_interval = 0.003
    bot = await start_bot(tg={"telegram_stream_mode": "draft"})
    alice = telegram.new_user()
    answer = "Drafting: " + " ".join(f"w{i}" for i in range(200)) + " fin."
    vllm.script(Reply(reasoning="Think.", answer=answer))
    await telegram.private_text(alice, "draft it")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == [answer]
    drafts = telegram.drafts(alice.id)
    assert drafts, "no sendMessageDraft call"
    versions = [v.text for history in drafts.values() for v in history]
    assert any(answer.startswith(v) and v != answer for v in versions if v.startswith("Drafting"))
    assert not telegram.calls_to("editMessageText", alice.id)
    assert not telegram.errors()


async def test_draft_mode_still_edits_in_groups(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot(tg={"telegram_stream_mode": "draft"})
    alice = telegram.new_user()
    group = telegram.new_group()
    await telegram.group_mention(group, alice, "hi all")
    await idle(bot, telegram)
    assert telegram.bot_texts(group) == ["You said: hi all"]
    assert not telegram.drafts(group)


async def test_start_help_and_the_command_menu(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    menu = [c["command"] for c in telegram.commands["default"]]
    assert menu == [
        "start", "help", "reset", "stop", "retry", "forget", "usage", "persona", "instructions",
        "language",
    ]  # fmt: skip
    admin_menus = [k for k in telegram.commands if k != "default"]
    assert len(admin_menus) == 1
    assert "4242" in admin_menus[0]
    # The same menus again for users whose Telegram app speaks Chinese (language_code "zh").
    assert set(telegram.localized_commands) == {("default", "zh"), (admin_menus[0], "zh")}
    chinese = {c["command"]: c["description"] for c in telegram.localized_commands["default", "zh"]}
    assert list(chinese) == menu
    assert chinese["reset"] == "忘掉我们在这里的对话"
    assert telegram.commands["default"][2]["description"] == "Forget our conversation here"
    admin_zh = [c["command"] for c in telegram.localized_commands[admin_menus[0], "zh"]]
    assert admin_zh == [c["command"] for c in telegram.commands[admin_menus[0]]]
    alice = telegram.new_user()
    chat = telegram.private_chat(alice)
    await telegram.command(chat, alice, "start")
    await telegram.command(chat, alice, "help")
    await idle(bot, telegram)
    start, help_ = telegram.bot_messages(alice.id)
    assert "mention me" in start.text
    assert "/help" in start.text
    assert "/reset" in help_.text
    assert "/reset_all" not in help_.text
    assert not vllm.requests
