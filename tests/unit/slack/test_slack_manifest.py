"""The app manifest an operator pastes subscribes to exactly what the adapter handles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped,unused-ignore]  # PyYAML ships no stubs

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "slack" / "manifest.yml"


def manifest() -> dict[str, Any]:
    data = yaml.safe_load(MANIFEST.read_text())
    assert isinstance(data, dict)
    return data


def test_events_scopes_and_the_slash_command() -> None:
    data = manifest()
    events = set(data["settings"]["event_subscriptions"]["bot_events"])
    assert events == {
        "app_mention",
        "assistant_thread_started",
        "assistant_thread_context_changed",
        "message.channels",
        "message.groups",
        "message.im",
        "message.mpim",
    }
    scopes = set(data["oauth_config"]["scopes"]["bot"])
    assert {
        "app_mentions:read",
        "chat:write",
        "commands",
        "im:history",
        "assistant:write",
    } <= scopes
    # every message.* event needs its history scope
    for event in {e for e in events if e.startswith("message.")}:
        assert f"{event.split('.')[1]}:history" in scopes
    (command,) = data["features"]["slash_commands"]
    assert command["command"] == "/parley"
    assert command["should_escape"] is True
    pane = data["features"]["assistant_view"]
    assert "assistant_description" in pane
    assert 1 <= len(pane["suggested_prompts"]) <= 4
    assert all(p["title"] and p["message"] for p in pane["suggested_prompts"])
    assert data["settings"]["interactivity"]["is_enabled"] is True
    assert isinstance(data["settings"]["socket_mode_enabled"], bool)
