"""Reads PERSONAS_FILE at start; a mistake in it stops Parley with one line naming the line."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from core.errors import ConfigError
from core.personas import Persona, Personas

log = logging.getLogger(__name__)

DEFAULT_FILE = "personas.yaml"


class _File(BaseModel):
    """The file's shape: a list of personas under ``personas``."""

    model_config = ConfigDict(extra="forbid")

    personas: list[Persona] = Field(min_length=1)


def load_personas(path: str, default_id: str = "") -> Personas:
    """The personas in ``path`` (the shipped example by default), ``default_id`` or the first
    one as the default. No file at the default path means one plain persona; no file anywhere
    else is an error, as is every invalid value."""
    default_id = default_id.strip().lower()
    if not path.strip():
        return _plain(default_id, "PERSONAS_FILE is empty")
    file = Path(path)
    if not file.is_file():
        if path == DEFAULT_FILE:
            return _plain(default_id, f"there is no {DEFAULT_FILE} here")
        raise ConfigError(f"PERSONAS_FILE={path}: no such file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"PERSONAS_FILE={path}: cannot read it ({exc})") from None
    return parse_personas(text, default_id, name=path)


def parse_personas(text: str, default_id: str = "", *, name: str = DEFAULT_FILE) -> Personas:
    """Personas from YAML text; ``name`` is how errors refer to the file."""
    where = f"PERSONAS_FILE {name}"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}{line}: not valid YAML ({problem})") from None
    if root is not None:
        _refuse_repeated_keys(root, where)
    if not isinstance(data, dict):
        at = _line(root, ())
        raise ConfigError(f"{where}, line {at}: expected 'personas:' and a list of personas")
    try:
        personas = _File.model_validate(data).personas
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        raise ConfigError(
            f"{where}, line {_line(root, loc)}: {path or 'the file'}: {error['msg']}"
        ) from None
    seen: set[str] = set()
    for index, persona in enumerate(personas):
        if persona.id in seen:
            at = _line(root, ("personas", index, "id"))
            raise ConfigError(f"{where}, line {at}: the id {persona.id!r} is used twice")
        seen.add(persona.id)
    default_id = default_id.strip().lower() or personas[0].id
    if default_id not in seen:
        ids = ", ".join(p.id for p in personas)
        raise ConfigError(f"DEFAULT_PERSONA={default_id} is not in {where} (it has: {ids})")
    return Personas(tuple(personas), default_id)


def _plain(default_id: str, why: str) -> Personas:
    """Only the built-in persona; DEFAULT_PERSONA cannot name another."""
    plain = Personas.plain()
    if default_id and default_id != plain.default_id:
        raise ConfigError(f"DEFAULT_PERSONA={default_id} names a persona, but {why}")
    # Not at INFO: a start-up that then fails must print one line; `parley doctor` says it.
    log.debug("no personas file (%s): every chat uses LLM_INSTRUCTIONS alone", why)
    return plain


def _line(root: Node | None, loc: Sequence[int | str]) -> int:
    """The 1-based line of the YAML node at ``loc`` (as deep as it exists)."""
    node = root
    if node is None:
        return 1
    for part in loc:
        child: Node | None = None
        if isinstance(node, MappingNode) and isinstance(part, str):
            child = next((v for k, v in node.value if _scalar(k) == part), None)
            if child is None:  # an unknown field: its key is where it is
                child = next((k for k, _ in node.value if _scalar(k) == part), None)
        elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _scalar(node: Node) -> str | None:
    """A scalar node's text."""
    return str(node.value) if isinstance(node, ScalarNode) else None


def _refuse_repeated_keys(node: Node, where: str) -> None:
    """YAML keeps the last of two equal keys silently; a persona file must not."""
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            text = _scalar(key)
            if text is not None and text in seen:
                at = key.start_mark.line + 1
                raise ConfigError(f"{where}, line {at}: {text!r} is given twice")
            if text is not None:
                seen.add(text)
            _refuse_repeated_keys(value, where)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _refuse_repeated_keys(item, where)
