"""What the Slack adapter says in its own words (the core's phrases, adjusted for Slack)."""

from __future__ import annotations

from core.phrases import Phrases

PHRASES = Phrases(stop_hint="Use `/parley stop` to cancel it.")

TEXT_ONLY = "I can only read text. Please type your question."
NOT_ADMIN = "Only Parley's admins can do that. Nothing was changed."
NO_CONVERSATION = "We have no conversation here yet. Mention me or send me a DM to start one."
RETRYING = "Answering your last message again…"
RESET_NOTHING = "There was nothing to forget here."
RESET_ALL_QUESTION = (
    "This forgets *every* conversation Parley has stored, on every platform. It cannot be undone."
)
RESET_ALL_CANCELLED = "Cancelled. Nothing was changed."
RESET_USER_USAGE = "Usage: `/parley reset-user @someone`"

HELP = """*Parley* answers direct messages and @mentions; keep talking in the thread to continue.
`/parley reset` — forget our latest conversation here
`/parley stop` — stop the answer being written
`/parley retry` — answer your last message again
`/parley forget` — delete all your conversations with Parley here
`/parley help` — this help"""

ADMIN_HELP = """
Admins:
`/parley reset-user @someone` — forget all of someone's conversations
`/parley reset-channel` — forget every conversation in this channel
`/parley reset-all` — forget everything (asks first)
`/parley stats` — what is stored"""


def forgot(count: int, what: str) -> str:
    """ "Forgot 3 conversations of @x." with the right plural."""
    noun = "conversation" if count == 1 else "conversations"
    return f"Forgot {count} {noun} {what}."
