"""The assistant pane's small parts: prompts from the environment, titles, kept context."""

from __future__ import annotations

import pytest

from bots.slack.assistant import safe_context, thread_title
from bots.slack.settings import SuggestedPrompt, parse_prompts


def test_prompts_are_title_message_pairs_or_plain() -> None:
    assert parse_prompts("") == ()
    assert parse_prompts(" Sum = Sum it up = briefly | What now? |") == (
        SuggestedPrompt("Sum", "Sum it up = briefly"),
        SuggestedPrompt("What now?", "What now?"),
    )
    with pytest.raises(ValueError, match="at most 4"):
        parse_prompts("a|b|c|d|e")  # Slack shows four at most
    with pytest.raises(ValueError, match="not a prompt"):
        parse_prompts("title=")


def test_a_title_is_one_short_line() -> None:
    assert thread_title("  what\nis  this? ") == "what is this?"
    long = thread_title("word " * 40)
    assert len(long) <= 80
    assert long.endswith("…")


def test_only_slack_ids_are_kept_as_context() -> None:
    assert safe_context({"channel_id": "C0GENERAL", "team_id": "T1", "x": "y"}) == {
        "channel_id": "C0GENERAL",
        "team_id": "T1",
    }
    assert safe_context({"channel_id": "<!here>"}) == {}
    assert safe_context("nope") == {}
