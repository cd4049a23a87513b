"""A group's persona and instructions: its admins (getChatMember) set them, every member's
conversation follows them, everyone else is refused and changes nothing."""

from __future__ import annotations

from pathlib import Path

from telegram import ChatMember

from core import texts
from tests.fakes.fake_telegram import MEMBER_STATUSES, FakeTelegram, User
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import ADMIN_ID, BotFactory, idle

PERSONAS = str(Path(__file__).parents[2] / "support" / "personas.yaml")


async def test_group_instructions_from_its_admins_only(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot(core={"personas_file": PERSONAS})
    owner, alice, bob = (telegram.new_user(n) for n in ("Olga", "Alice", "Bob"))
    group = telegram.new_group()
    telegram.set_member_status(group, owner, "creator")

    await telegram.command(group, alice, "instructions", "Answer in French.")
    await telegram.command(group, alice, "persona", "concise")
    await idle(bot, telegram)
    assert telegram.bot_texts(group)[-2:] == [texts.NOT_CHAT_ADMIN, texts.NOT_CHAT_ADMIN]
    asked = telegram.calls_to("getChatMember")
    assert [(int(c.params["chat_id"]), int(c.params["user_id"])) for c in asked] == [
        (group.id, alice.id)
    ]
    assert len(asked) == 1  # the second command used the cached answer

    await telegram.group_mention(group, bob, "bonjour?")
    await idle(bot, telegram)
    assert vllm.requests[-1]["messages"][0]["content"] == "bonjour?"  # nothing changed

    await telegram.command(group, owner, "instructions", "Answer in French.")
    await telegram.command(group, owner, "persona", "concise")
    await idle(bot, telegram)
    assert telegram.bot_texts(group)[-2] == texts.INSTRUCTIONS_SAVED
    assert telegram.bot_texts(group)[-1].startswith("Persona here: Concise.")

    for member in (alice, bob):  # every member's own conversation follows the group's settings
        await telegram.group_mention(group, member, f"hello from {member.first_name}")
        await idle(bot, telegram)
        request = vllm.requests[-1]
        first = request["messages"][0]["content"]  # the oldest turn carries the instructions
        assert first.startswith("Answer in one sentence.\n\nAnswer in French.\n\n")
        assert request["messages"][-1]["content"].endswith(f"hello from {member.first_name}")
        assert request["temperature"] == 0.5

    await telegram.private_text(alice, "and in private?")  # her private chat is her own
    await idle(bot, telegram)
    assert vllm.requests[-1]["messages"][0]["content"] == "and in private?"

    await telegram.command(group, alice, "instructions")  # anyone may look
    await idle(bot, telegram)
    assert "Answer in French." in telegram.bot_texts(group)[-1]
    assert telegram.errors() == []


async def test_group_administrators_and_bot_admins_may_and_buttons_refuse_others(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot(core={"personas_file": PERSONAS})
    moderator, bob = telegram.new_user("Mo"), telegram.new_user("Bob")
    group = telegram.new_group()
    telegram.set_member_status(group, moderator, "administrator")

    await telegram.command(group, moderator, "persona")
    await idle(bot, telegram)
    listing = telegram.last_bot_message(group)
    assert listing.reply_markup is not None
    buttons = [row[0] for row in listing.reply_markup["inline_keyboard"]]
    assert [b["text"] for b in buttons][:2] == ["✓ Assistant", "Concise"]

    pressed = await telegram.press_button(bob, listing, buttons[1]["callback_data"])
    await idle(bot, telegram)
    answer = telegram.callback_answers[pressed["callback_query"]["id"]]
    assert answer["text"] == texts.NOT_CHAT_ADMIN
    assert answer["show_alert"] in (True, "true", "True")
    assert listing.reply_markup is not None  # the list stays for those who may choose

    pressed = await telegram.press_button(moderator, listing, buttons[1]["callback_data"])
    await idle(bot, telegram)
    assert listing.text.startswith("Persona here: Concise.")
    assert listing.reply_markup is None

    boss = User(ADMIN_ID, "Root")  # the bot's admin (ADMIN_IDS), a plain member here
    asked = len(telegram.calls_to("getChatMember"))
    await telegram.command(group, boss, "instructions", "Be formal.")  # …and may still
    await idle(bot, telegram)
    assert telegram.bot_texts(group)[-1] == texts.INSTRUCTIONS_SAVED
    assert len(telegram.calls_to("getChatMember")) == asked  # ADMIN_IDS need no lookup
    assert telegram.errors() == []


def test_the_fakes_chat_members_are_the_bot_apis() -> None:
    for status, fields in MEMBER_STATUSES.items():  # PTB refuses a member missing a field
        member = ChatMember.de_json({"status": status, "user": User(1, "A").to_dict(), **fields})
        assert member is not None
        assert member.status == status
