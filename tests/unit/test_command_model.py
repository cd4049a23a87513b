"""The command catalogue, each platform's spelling of it, the docs, and the intake line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bots.slack.commands import parse_pick as slack_pick
from bots.telegram.commands import (
    ADMIN_MENU,
    PUBLIC_MENU,
    choice_buttons,
    parse_answer,
    parse_pick,
)
from core.admins import Admins
from core.commands import CATALOGUE, Choice, CommandName
from core.conversation import ConversationKey
from core.intake import Intake
from core.surfaces import CLI, SLACK, SURFACES, TELEGRAM, TERMINAL, Surface

DOCS = Path(__file__).resolve().parents[2] / "docs" / "commands.md"


@pytest.mark.parametrize("surface", SURFACES.values(), ids=lambda s: s.platform)
def test_every_command_a_surface_offers_parses_back_to_itself(surface: Surface) -> None:
    for name in surface.commands:
        word = surface.bare(name).removeprefix(surface.prefix)
        if " " not in word:  # `reset --user` is argparse's, not a word to parse
            assert surface.parse(word) is name


def test_platform_spellings() -> None:
    assert TELEGRAM.typed(CommandName.RESET_USER, "<id>") == "/reset_user <id>"
    assert SLACK.typed(CommandName.RESET_CHAT) == "`/parley reset-channel`"
    assert SLACK.parse("reset-chat") is CommandName.RESET_CHAT
    assert SLACK.parse("RESET-CHANNEL") is CommandName.RESET_CHAT
    assert TELEGRAM.parse("reset-all") is CommandName.RESET_ALL
    assert TELEGRAM.parse("frobnicate") is None
    assert SLACK.parse("start") is None  # Slack has no /start
    assert TERMINAL.parse("reset_all") is None  # not offered in the terminal
    assert CLI.bare(CommandName.RESET_ALL) == "parley admin reset --all"


def test_menus_come_from_the_catalogue() -> None:
    public = [c.command for c in PUBLIC_MENU]
    assert public == [
        "start",
        "help",
        "reset",
        "stop",
        "retry",
        "forget",
        "usage",
        "persona",
        "instructions",
        "language",
    ]
    admin = [c.command for c in ADMIN_MENU]
    assert admin[: len(public)] == public
    assert {"stats", "reset_user", "reset_chat", "reset_all", "allow", "deny", "audit"} <= set(
        admin
    )
    assert all(len(c.description) <= 256 for c in ADMIN_MENU)
    assert "personas" not in admin  # the shell's report; chats see the counts in /stats


def test_the_docs_describe_every_command_once() -> None:
    first_cells = [
        line.split("|")[1].replace("(admin)", "").split("/")
        for line in DOCS.read_text().splitlines()
        if line.startswith("| ")
    ]
    documented = {name.strip() for cell in first_cells for name in cell}
    for spec in CATALOGUE:
        assert spec.name.value in documented, f"docs/commands.md has no row for {spec.name}"


def test_option_buttons_parse_only_what_parley_made() -> None:
    markup = choice_buttons(
        (
            Choice("Tutor", CommandName.PERSONA, "tutor", selected=True),
            Choice("X", CommandName.PERSONA, "x" * 60),
        )
    )
    (row,) = markup.inline_keyboard  # the second would not fit Telegram's 64 bytes of data
    assert row[0].text == "✓ Tutor"
    assert parse_pick(str(row[0].callback_data)) == (CommandName.PERSONA, "tutor")
    assert slack_pick("persona|tutor") == (CommandName.PERSONA, "tutor")
    for data in ("pk|confirm|x", "pk|nope|x", "pk|persona|", "pk|persona", "cf|a|y"):
        assert parse_pick(data) is None
    for value in ("confirm|x", "nope|x", "persona|", "persona"):
        assert slack_pick(value) is None


def test_confirmation_buttons_parse_only_what_parley_made() -> None:
    assert parse_answer("cf|abc|y") == ("abc", "yes")
    assert parse_answer("cf|abc|n") == ("abc", "no")
    for data in ("reset_all|y|1|2", "cf||y", "cf|abc|maybe", "", "cf|a|y|extra"):
        assert parse_answer(data) is None


def test_admins_come_from_admin_ids_and_the_hosts_shell() -> None:
    admins = Admins(frozenset({"telegram:1", "slack:U1"}))
    assert admins("telegram", "1")
    assert not admins("telegram", "2")
    assert not admins("slack", "1")
    assert admins("cli", "root")
    assert admins("terminal", "ada")


KEY = ConversationKey("telegram", "c", "u")


async def test_intake_keeps_a_bounded_line_in_arrival_order() -> None:
    intake = Intake(max_waiting=2)
    tickets = [intake.enter(KEY) for _ in range(3)]
    assert all(t is not None for t in tickets)
    assert intake.enter(KEY) is None  # one running and two waiting: the line is full
    assert intake.waiting(KEY) == 3
    order: list[int] = []

    async def take_turn(n: int) -> None:
        ticket = tickets[n]
        assert ticket is not None
        await ticket.wait_for_previous()
        order.append(n)
        ticket.pass_on()

    await asyncio.gather(*(take_turn(n) for n in (2, 1, 0)))
    assert order == [0, 1, 2]
    for ticket in tickets:
        assert ticket is not None
        intake.leave(ticket)
    assert len(intake) == 0
    assert intake.enter(KEY) is not None
