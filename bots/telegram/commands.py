"""Telegram ⇄ core commands: parse `/cmd@bot args` and button presses, draw the core's replies."""

from __future__ import annotations

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup

from core.commands import Choice, CommandName, Question
from core.i18n import ENGLISH, LANGUAGES, Translator, translator
from core.surfaces import TELEGRAM

_CONFIRM = "cf"  # callback data: cf|<question id>|y or n (Telegram allows 64 bytes)
_PICK = "pk"  # callback data: pk|<command>|<argument>, e.g. pk|persona|tutor
_CALLBACK_BYTES = 64


def menu(*, admin: bool, t: Translator = ENGLISH) -> tuple[BotCommand, ...]:
    """The command menu (setMyCommands) from the core's catalogue, in ``t``'s language."""
    return tuple(
        BotCommand(TELEGRAM.bare(spec.name).removeprefix("/"), t.gettext(spec.summary))
        for spec in TELEGRAM.specs(admin=admin)
    )


def menu_languages(default: str) -> list[tuple[str | None, Translator]]:
    """Each language's menu and the ``language_code`` it is registered for: the default
    language's for everyone (None), each other one for users whose app speaks it ("zh")."""
    return [
        (None if language == default else language.split("_", 1)[0].lower(), translator(language))
        for language in sorted(LANGUAGES, key=lambda language: language != default)
    ]


PUBLIC_MENU = menu(admin=False)
ADMIN_MENU = menu(admin=True)


def parse_command(word: str) -> CommandName | None:
    """`reset_user` → the core's command, or None if Parley has no such command."""
    return TELEGRAM.parse(word)


def arguments(text: str) -> tuple[str, ...]:
    """The words after the command."""
    return tuple(text.split())


def buttons(question: Question) -> InlineKeyboardMarkup:
    """A yes/no question as inline buttons."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(question.yes, callback_data=f"{_CONFIRM}|{question.id}|y"),
                InlineKeyboardButton(question.no, callback_data=f"{_CONFIRM}|{question.id}|n"),
            ]
        ]
    )


def parse_answer(data: str) -> tuple[str, str] | None:
    """Callback data → (question id, "yes"/"no"), or None for a button Parley did not make."""
    parts = data.split("|")
    if len(parts) != 3 or parts[0] != _CONFIRM or parts[2] not in ("y", "n") or not parts[1]:
        return None
    return parts[1], "yes" if parts[2] == "y" else "no"


def choice_buttons(choices: tuple[Choice, ...]) -> InlineKeyboardMarkup:
    """Options as inline buttons, one per row; the current one is ticked."""
    rows = []
    for choice in choices:
        data = f"{_PICK}|{choice.command.value}|{choice.argument}"
        if len(data.encode()) > _CALLBACK_BYTES:
            continue  # cannot be a button: the reply's text says how to type it
        label = f"✓ {choice.label}" if choice.selected else choice.label
        rows.append([InlineKeyboardButton(label, callback_data=data)])
    return InlineKeyboardMarkup(rows)


def parse_pick(data: str) -> tuple[CommandName, str] | None:
    """Callback data → (command, argument) for an option button, or None."""
    parts = data.split("|")
    if len(parts) != 3 or parts[0] != _PICK or not parts[2]:
        return None
    try:
        name = CommandName(parts[1])
    except ValueError:
        return None
    return (name, parts[2]) if name is not CommandName.CONFIRM else None
