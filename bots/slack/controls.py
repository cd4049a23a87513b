"""Slack ⇄ the buttons under an answer: Block Kit actions drawn, block_actions parsed."""

from __future__ import annotations

import re
from typing import Any

from core.sink import Control, Controls

CONTROL = "parley_control"  # action ids parley_control_<control>; the value is the answer id
CONTROL_ACTIONS = re.compile(rf"^{CONTROL}_[a-z]+$")
_BUTTON_TEXT = 75  # Slack's limit for a button's plain_text


def control_blocks(controls: Controls) -> list[dict[str, Any]]:
    """An answer's buttons as one actions block; the value names the answer."""
    if not controls:
        return []
    buttons: list[dict[str, Any]] = [
        {
            "type": "button",
            "action_id": f"{CONTROL}_{button.control.value}",
            "text": {"type": "plain_text", "text": button.label[:_BUTTON_TEXT], "emoji": True},
            "value": controls.answer,
        }
        for button in controls.buttons
    ]
    return [{"type": "actions", "block_id": CONTROL, "elements": buttons}]


def control_attachments(controls: Controls) -> list[dict[str, Any]]:
    """The buttons in an attachment under the message's own text (so the text keeps its form);
    an empty list removes the buttons an earlier write put there."""
    blocks = control_blocks(controls)
    return [{"blocks": blocks, "fallback": ""}] if blocks else []


def parse_control(action_id: str, value: str) -> tuple[str, str] | None:
    """A button under an answer → (control, answer id), or None for one Parley did not make."""
    word = action_id.removeprefix(f"{CONTROL}_")
    if word == action_id or word not in set(Control) or not value:
        return None
    return word, value
