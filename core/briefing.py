"""What a turn tells the model besides the conversation: instructions and sampling, in layers.

R1 takes no system message, so the operator's LLM_INSTRUCTIONS, then the chat's persona's, then
the chat's own instructions are folded into the first user turn (``core.context.fit``). The
persona's sampling values replace the defaults for its requests. None of this is stored in
the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.chat_settings import ChatScope, ChatSettingsStore
from core.commands import Caller
from core.personas import Personas
from core.settings import CoreSettings

LAYER_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class Brief:
    """One request's instructions and sampling overrides (None: the configured default)."""

    instructions: str = ""
    persona: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    model: str | None = None


@dataclass
class Briefing:
    """Builds each turn's brief from the operator's settings and the chat's choices."""

    settings: CoreSettings
    personas: Personas
    store: ChatSettingsStore | None = None

    def operator(self) -> Brief:
        """LLM_INSTRUCTIONS and the default persona: what a chat without choices gets."""
        return self.compose("", "")

    async def for_turn(self, caller: Caller) -> Brief:
        """The brief for a turn in the caller's chat (one read of its settings)."""
        if self.store is None:
            return self.operator()
        chosen = await self.store.get(ChatScope.of(caller))
        return self.compose(chosen.persona, chosen.instructions)

    def compose(self, persona_id: str, instructions: str) -> Brief:
        """The three layers, the empty ones left out, and the persona's sampling values."""
        persona = self.personas.chosen(persona_id)
        layers = (self.settings.llm_instructions, persona.instructions, instructions)
        return Brief(
            instructions=LAYER_SEPARATOR.join(t.strip() for t in layers if t.strip()),
            persona=persona.id,
            temperature=persona.temperature,
            top_p=persona.top_p,
            max_tokens=persona.max_tokens,
            model=persona.model,
        )
