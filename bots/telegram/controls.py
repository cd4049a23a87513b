"""Telegram ⇄ the buttons under an answer: inline keyboards drawn, callback data parsed."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from core.sink import Control, Controls

_CONTROL = "ac"  # callback data: ac|<control>|<answer id>, e.g. ac|stop|9f2c… (64 bytes at most)


def control_buttons(controls: Controls) -> InlineKeyboardMarkup | None:
    """An answer's buttons in one row; None when it has none (an edit without one removes them)."""
    if not controls:
        return None
    row = [
        InlineKeyboardButton(
            button.label, callback_data=f"{_CONTROL}|{button.control.value}|{controls.answer}"
        )
        for button in controls.buttons
    ]
    return InlineKeyboardMarkup([row])


def parse_control(data: str) -> tuple[str, str] | None:
    """Callback data → (control, answer id) for a button under an answer, or None."""
    parts = data.split("|")
    if len(parts) != 3 or parts[0] != _CONTROL or not parts[2]:
        return None
    return (parts[1], parts[2]) if parts[1] in set(Control) else None
