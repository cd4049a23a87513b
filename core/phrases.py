"""Everything Parley says to users in its own words, in one place adapters can adjust.

The fields hold the English message ids; ``in_language`` gives the same phrases in a
person's language, once per language and process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace

from core.commands import CommandName
from core.errors import BotError
from core.i18n import ENGLISH, N_, Translator, translator
from core.surfaces import Surface

# Fields that are not texts to translate.
_NOT_TEXT = frozenset({"stop_command", "language"})


@dataclass(frozen=True, slots=True)
class Phrases:
    """User-facing texts; ``stop_command`` is the platform's own stop command."""

    stop_command: str = "/stop"
    language: str = ENGLISH.language
    stop_hint_text: str = N_("Send {command} to cancel it.")
    empty_message: str = N_("Send me a text message and I'll answer.")
    stale_button: str = N_("This button no longer does anything.")
    text_only: str = N_("I can read text only. Please send your question as a text message.")
    busy: str = N_("I'm still answering your previous message. {stop_hint}")
    queue_full: str = N_(
        "I'm still answering your earlier messages. Send this one again in a moment. {stop_hint}"
    )
    stopped: str = N_("⏹ Stopped.")
    interrupted: str = N_("⏹ Stopped to answer your new message.")
    trimmed: str = N_("ℹ️ Older messages were left out so the conversation fits the model's memory.")
    too_long: str = N_(
        "Your message is too long for the model: {tokens} tokens, and the limit is {limit}. "
        "Please shorten it."
    )
    instructions_too_long: str = N_(
        "The persona and instructions set for this chat fill the model's whole memory, so there "
        "is no room for your message. Whoever set them can shorten or clear the instructions, "
        "or pick another persona."
    )
    out_of_room: str = N_(
        "⚠️ The model used up its reply budget while thinking and gave no answer. "
        "Try a simpler question, or ask again."
    )
    cut_short: str = N_("… (the answer reached its length limit)")
    no_answer: str = N_("The model finished without an answer. Please ask again.")
    not_saved: str = N_("⚠️ I couldn't save this exchange, so I may not remember it.")
    previous_lost: str = N_(
        "⚠️ I was restarted before I finished answering your previous message, so it has no "
        "answer. Send it again if you still need one."
    )
    nothing_to_retry: str = N_("There is no earlier message to answer again.")
    refused: str = N_("Sorry, this bot is private. Ask its administrator for access.")
    over_quota: str = N_("You've reached your limit ({reason}). You can continue in {wait}.")
    quota_messages: str = N_("messages per minute")
    quota_tokens: str = N_("tokens per day")
    shutting_down: str = N_("Parley is restarting. Please send your message again in a minute.")
    interrupted_shutdown: str = N_(
        "⚠️ Interrupted: Parley is restarting. Please send your message again."
    )
    thinking: str = N_("💭 Thinking… {seconds} s")
    thinking_start: str = N_("💭 Thinking…")
    # Slack shows it after the app's name while an answer is on its way: "Parley is thinking…"
    status: str = N_("is thinking…")
    stop_button: str = N_("⏹ Stop")
    regenerate_button: str = N_("🔄 Regenerate")
    continue_button: str = N_("➡ Continue")
    too_old: str = N_("This answer is too old for that button: only the newest answer can change.")
    not_yours: str = N_("Only the person who asked, or an admin, can use these buttons.")
    replaced: str = N_("↑ The new answer replaced this part.")
    # Telegram inline mode (`@bot question` in any chat)
    inline_title: str = N_("Ask Parley")
    inline_question: str = N_("❓ {question}")
    inline_more: str = N_("… The whole answer is in your private chat with me.")
    inline_start: str = N_(
        "… The answer is longer than one message. Start a private chat with me (/start) to get "
        "long answers whole."
    )
    inline_whole: str = N_("The whole answer to your inline question “{question}”:")
    # Slack's assistant pane: the first message of a new thread, and the prompts offered under it
    assistant_greeting: str = N_(
        "Hi! I'm Parley. Ask me anything: I think a question through before I answer it."
    )
    assistant_prompts_title: str = N_("Try one of these:")
    prompt_explain_title: str = N_("Explain a concept")
    prompt_explain: str = N_("Explain how public-key cryptography works, step by step.")
    prompt_solve_title: str = N_("Solve a puzzle")
    prompt_solve: str = N_(
        "A bat and a ball cost 1.10 in total. The bat costs 1.00 more than the ball. "
        "How much does the ball cost?"
    )
    prompt_code_title: str = N_("Write some code")
    prompt_code: str = N_("Write a Python function that tells whether a word is a palindrome.")

    @property
    def stop_hint(self) -> str:
        """How to cancel here: "Send /stop to cancel it." in this language."""
        return self.stop_hint_text.format(command=self.stop_command)

    @property
    def translator(self) -> Translator:
        """The translator of the language these phrases are in."""
        return translator(self.language)

    def error(self, exc: BotError) -> str:
        """An error's short message for the person, in this language."""
        return self.translator.gettext(exc.user_message)

    def in_language(self, t: Translator) -> Phrases:
        """The same phrases in ``t``'s language."""
        return _translated(self, t.language)


@functools.lru_cache(maxsize=64)
def _translated(phrases: Phrases, language: str) -> Phrases:
    """Translate every text field once per language (the phrases are few and immutable)."""
    t = translator(language)
    texts = {
        f.name: t.gettext(getattr(phrases, f.name))
        for f in fields(phrases)
        if f.name not in _NOT_TEXT
    }
    return replace(phrases, language=language, **texts)


def phrases_for(surface: Surface) -> Phrases:
    """The notices with this platform's own stop command in them."""
    return Phrases(stop_command=surface.typed(CommandName.STOP))
