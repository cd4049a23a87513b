"""A channel's persona and instructions: workspace admins (users.info) and the bot's admins set
them, every conversation in the channel follows them, everyone else is refused."""

from __future__ import annotations

from pathlib import Path

from bots.slack.commands import PICK
from core import texts
from tests.fakes.fake_slack import wait_until
from tests.integration.slack.conftest import ADMIN, RunningBot, StartBot

PERSONAS = str(Path(__file__).parents[2] / "support" / "personas.yaml")
GENERAL = "C0GENERAL"


async def command(bot: RunningBot, text: str, *, user: str) -> dict[str, object]:
    """/parley in #general; the ephemeral answer's body."""
    delivery = await bot.sender.command(text, user_id=user, channel_id=GENERAL)
    assert delivery.status == 200, delivery
    return delivery.json()


async def test_channel_settings_from_workspace_admins_only(start_bot: StartBot) -> None:
    bot = await start_bot(personas_file=PERSONAS)
    bot.slack.roles["U0BOSS"] = "admin"

    refused = await command(bot, "instructions Answer in French.", user="U0BOB")
    assert refused["text"] == texts.NOT_CHAT_ADMIN
    refused = await command(bot, "persona concise", user="U0BOB")
    assert refused["text"] == texts.NOT_CHAT_ADMIN
    roles = [c for c in bot.slack.calls_to("users.info") if "include_locale" not in c.args]
    assert len(roles) == 1  # the second answer came from the cache
    locales = [c for c in bot.slack.calls_to("users.info") if "include_locale" in c.args]
    assert len(locales) == 1  # the person's language too

    saved = await command(bot, "instructions Answer in French.", user="U0BOSS")
    assert saved["text"] == texts.INSTRUCTIONS_SAVED
    assert str((await command(bot, "persona concise", user=ADMIN))["text"]).startswith(
        "Persona here: *Concise*."
    )

    for user in ("U0ALICE", "U0BOB"):  # every conversation in the channel follows them
        root = (await bot.mention(user, f"hello from {user}", channel=GENERAL))["ts"]
        await bot.answered(GENERAL, root)
        request = bot.vllm.requests[-1]
        assert request["messages"][0]["content"] == (
            f"Answer in one sentence.\n\nAnswer in French.\n\nhello from {user}"
        )
        assert request["temperature"] == 0.5

    shown = await command(bot, "instructions", user="U0BOB")  # anyone may look
    assert "Answer in French." in str(shown["text"])
    assert [c.error for c in bot.slack.calls if not c.ok] == []


async def test_option_buttons_refuse_others_in_a_channel(start_bot: StartBot) -> None:
    bot = await start_bot(personas_file=PERSONAS)
    listing = await command(bot, "persona", user=ADMIN)
    blocks = listing["blocks"]
    assert isinstance(blocks, list)
    (actions,) = [b for b in blocks if b.get("block_id") == PICK]
    concise = actions["elements"][1]
    assert concise["text"]["text"] == "Concise"

    before = len(bot.slack.responses)
    click = await bot.sender.action(
        concise["action_id"], concise["value"], user_id="U0BOB", channel_id=GENERAL
    )
    assert click.status == 200
    await wait_until(lambda: len(bot.slack.responses) > before)
    response = bot.slack.responses[-1]
    assert response["text"] == texts.NOT_CHAT_ADMIN
    assert response["replace_original"] is False  # the list stays; only Bob is told

    await bot.sender.action(
        concise["action_id"], concise["value"], user_id=ADMIN, channel_id=GENERAL
    )
    await wait_until(lambda: len(bot.slack.responses) > before + 1)
    assert bot.slack.responses[-1]["replace_original"] is True
    assert str(bot.slack.responses[-1]["text"]).startswith("Persona here: *Concise*.")


async def test_without_the_users_read_scope_only_bot_admins_may(start_bot: StartBot) -> None:
    bot = await start_bot(personas_file=PERSONAS)
    bot.slack.scopes.discard("users:read")
    bot.slack.roles["U0BOSS"] = "owner"
    refused = await command(bot, "instructions Be formal.", user="U0BOSS")
    assert refused["text"] == texts.NOT_CHAT_ADMIN
    # Asked once for the role and once for the language (English, then, for an hour).
    assert [c.error for c in bot.slack.calls if not c.ok] == ["missing_scope", "missing_scope"]
    saved = await command(bot, "instructions Be formal.", user=ADMIN)
    assert saved["text"] == texts.INSTRUCTIONS_SAVED
