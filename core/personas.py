"""Personas: operator-defined ways of answering that a chat can pick (``PERSONAS_FILE``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# Short and plain, so an id fits a button's data (Telegram allows 64 bytes) and is easy to type.
PERSONA_ID = r"^[a-z0-9][a-z0-9_-]{0,31}$"
ONE_LINE = r"^[^\r\n]*$"


class Persona(BaseModel):
    """One persona as the operator wrote it; unknown fields are refused, so typos are caught."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str = Field(pattern=PERSONA_ID)
    title: str = Field(min_length=1, max_length=40, pattern=ONE_LINE)
    description: str = Field("", max_length=200, pattern=ONE_LINE)
    instructions: str = Field("", max_length=20_000)
    # DeepSeek advises 0.5-0.7 for R1; anything the API takes is accepted.
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=16)
    model: str | None = Field(None, min_length=1, max_length=200)


# Used when no personas file exists: answers shaped by LLM_INSTRUCTIONS alone.
PLAIN = Persona(id="default", title="Default", description="Parley's own way of answering")


@dataclass(frozen=True, slots=True)
class Personas:
    """The operator's personas in file order, and the one chats use until they pick another."""

    items: tuple[Persona, ...]
    default_id: str

    def __post_init__(self) -> None:
        if not any(p.id == self.default_id for p in self.items):
            raise ValueError(f"no persona {self.default_id!r}")

    @classmethod
    def plain(cls) -> Personas:
        """The single built-in persona, for when the operator defined none."""
        return cls((PLAIN,), PLAIN.id)

    def __iter__(self) -> Iterator[Persona]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, persona_id: str) -> Persona | None:
        """The persona with this id (case-insensitive), if the file defines it."""
        wanted = persona_id.strip().lower()
        return next((p for p in self.items if p.id == wanted), None)

    @property
    def default(self) -> Persona:
        """The persona chats use until they pick one."""
        persona = self.get(self.default_id)
        assert persona is not None  # checked at construction
        return persona

    def chosen(self, persona_id: str) -> Persona:
        """A chat's persona: its choice, or the default if there is none or it was removed."""
        return (self.get(persona_id) if persona_id else None) or self.default
