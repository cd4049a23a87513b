"""clean_user_text: what users send is cleaned of control characters, and nothing else."""

from __future__ import annotations

import unicodedata

import hypothesis.strategies as st
import pytest
from hypothesis import example, given, settings

from core.text import clean_user_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("hello", "hello"),
        ("a\x00b\x07c\x1b[31md\x7fe", "abc[31mde"),  # NUL, BEL, ESC, DEL
        ("a\x85b\x9bc", "abc"),  # C1 controls
        ("line one\nline two\n\nline four", "line one\nline two\n\nline four"),
        ("col\tcol", "col\tcol"),
        ("windows\r\nline\rold mac", "windows\nline\nold mac"),
        ("  \n padded \t\n ", "padded"),
        ("\x00\x01\x02", ""),
        ("lone \ud800 high and \udfff low", "lone  high and  low"),
        ("שלום עולם", "שלום עולם"),  # RTL
        ("مرحبا بالعالم", "مرحبا بالعالم"),
        ("\u200fRTL mark\u200e and LTR mark", "\u200fRTL mark\u200e and LTR mark"),  # Cf: kept
        ("👩‍💻 👨‍👩‍👧‍👦 👍🏽 ❤️ 🇺🇦 🏴󠁧󠁢󠁥󠁮󠁧󠁿", "👩‍💻 👨‍👩‍👧‍👦 👍🏽 ❤️ 🇺🇦 🏴󠁧󠁢󠁥󠁮󠁧󠁿"),  # ZWJ, VS, tags kept
        ("𝄞 𝔘𝔫𝔦 中文", "𝄞 𝔘𝔫𝔦 中文"),
        ("e\u0301", "e\u0301"),  # not normalised either
    ],
)
def test_clean_user_text(raw: str, clean: str) -> None:
    assert clean_user_text(raw) == clean


def _dropped(char: str) -> bool:
    """Control characters (but newline and tab) and surrogates go."""
    return char not in "\n\t" and unicodedata.category(char) in ("Cc", "Cs")


@settings(max_examples=300)
@given(st.text(st.characters(codec=None, exclude_categories=())))
@example("\ud83d\ude00")  # a surrogate *pair* as two code points is still two lone surrogates
def test_clean_user_text_drops_exactly_the_controls(raw: str) -> None:
    clean = clean_user_text(raw)
    normalised = raw.replace("\r\n", "\n").replace("\r", "\n")
    assert clean == "".join(c for c in normalised if not _dropped(c)).strip()
    assert not any(_dropped(c) for c in clean)
    clean.encode("utf-8")  # no lone surrogates: always encodable
    assert clean_user_text(clean) == clean  # idempotent
