"""How stored messages are written to Redis: compact JSON, tolerant on the way back."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import orjson

from core.conversation import Role, StoredMessage

log = logging.getLogger(__name__)


def encode(message: StoredMessage) -> bytes:
    """One history entry."""
    return orjson.dumps(
        {"r": message.role.value, "c": message.content, "t": message.tokens, "at": message.at}
    )


def decode(raw: bytes | str) -> StoredMessage | None:
    """An entry back, or None (logged) if it is not ours: bad data never breaks a conversation."""
    try:
        data = orjson.loads(raw)
        return StoredMessage(
            role=Role(data["r"]),
            content=str(data["c"]),
            tokens=int(data["t"]),
            at=float(data.get("at", 0.0)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("skipping an unreadable history entry (%d bytes)", len(raw))
        return None


def decode_all(raws: Sequence[bytes | str]) -> list[StoredMessage]:
    """Entries back, keeping only readable ones."""
    messages = []
    for raw in raws:
        message = decode(raw)
        if message is not None:
            messages.append(message)
    return messages
