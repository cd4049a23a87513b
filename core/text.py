"""Cleaning what users send before it reaches the model or the store."""

from __future__ import annotations

import unicodedata

_KEEP = {"\n", "\t"}


def clean_user_text(text: str) -> str:
    """Drop control characters and lone surrogates; normalise newlines; trim the ends."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in _KEEP or category not in ("Cc", "Cs"):
            kept.append(char)
    return "".join(kept).strip()
