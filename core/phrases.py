"""Everything Parley says to users in its own words, in one place adapters can adjust."""

from __future__ import annotations

from dataclasses import dataclass

from core.commands import CommandName
from core.surfaces import Surface


@dataclass(frozen=True, slots=True)
class Phrases:
    """User-facing texts; ``stop_hint`` names the platform's own stop command."""

    stop_hint: str = "Send /stop to cancel it."
    empty_message: str = "Send me a text message and I'll answer."
    stale_button: str = "This button no longer does anything."
    text_only: str = "I can read text only. Please send your question as a text message."
    busy: str = "I'm still answering your previous message. {stop_hint}"
    queue_full: str = (
        "I'm still answering your earlier messages. Send this one again in a moment. {stop_hint}"
    )
    stopped: str = "⏹ Stopped."
    interrupted: str = "⏹ Stopped to answer your new message."
    trimmed: str = "ℹ️ Older messages were left out so the conversation fits the model's memory."
    too_long: str = (
        "Your message is too long for the model: {tokens} tokens, and the limit is {limit}. "
        "Please shorten it."
    )
    instructions_too_long: str = (
        "The persona and instructions set for this chat fill the model's whole memory, so there "
        "is no room for your message. Whoever set them can shorten or clear the instructions, "
        "or pick another persona."
    )
    out_of_room: str = (
        "⚠️ The model used up its reply budget while thinking and gave no answer. "
        "Try a simpler question, or ask again."
    )
    cut_short: str = "… (the answer reached its length limit)"
    no_answer: str = "The model finished without an answer. Please ask again."
    not_saved: str = "⚠️ I couldn't save this exchange, so I may not remember it."
    previous_lost: str = (
        "⚠️ I was restarted before I finished answering your previous message, so it has no "
        "answer. Send it again if you still need one."
    )
    nothing_to_retry: str = "There is no earlier message to answer again."
    refused: str = "Sorry, this bot is private. Ask its administrator for access."
    over_quota: str = "You've reached your limit ({reason}). You can continue in {wait}."
    shutting_down: str = "Parley is restarting. Please send your message again in a minute."
    interrupted_shutdown: str = (
        "⚠️ Interrupted: Parley is restarting. Please send your message again."
    )


def phrases_for(surface: Surface) -> Phrases:
    """The notices with this platform's own stop command in them."""
    return Phrases(stop_hint=f"Send {surface.typed(CommandName.STOP)} to cancel it.")
