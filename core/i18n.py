"""The user's language: which catalogs exist, which one a platform's language tag means, and
the ``Translator`` every text is looked up through.

English is the source language: the message ids are the English texts, so English needs no
catalog. Other languages are gettext catalogs under ``core/locale`` (edited as ``.po``, loaded
as the compiled ``.mo`` beside it with the standard library, so running needs no Babel).
"""

from __future__ import annotations

import functools
import gettext
from dataclasses import dataclass
from pathlib import Path

DOMAIN = "parley"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LANGUAGE = "en"
# Every language Parley speaks, in its own words (shown by /language), the source first.
LANGUAGES: dict[str, str] = {"en": "English", "zh_Hans": "简体中文"}
# Chinese written in traditional characters: no catalog yet, so not Simplified by mistake.
_TRADITIONAL = frozenset({"hant", "tw", "hk", "mo"})
_NAMES = {"english": "en", "chinese": "zh_Hans", "中文": "zh_Hans"}  # typed after /language


def N_(message: str) -> str:
    """Mark a text for the catalogs where it is defined; it is translated where it is said."""
    return message


@dataclass(frozen=True, slots=True)
class Translator:
    """One language's catalog, chosen per request and passed to whatever words a reply."""

    language: str
    catalog: gettext.NullTranslations

    def gettext(self, message: str) -> str:
        """The text in this language (the English id itself when the catalog lacks it)."""
        return self.catalog.gettext(message) if message else message

    def ngettext(self, singular: str, plural: str, count: int) -> str:
        """The form for ``count`` of a text that varies with a number."""
        return self.catalog.ngettext(singular, plural, count)

    @property
    def name(self) -> str:
        """The language's own name ("English", "简体中文")."""
        return LANGUAGES[self.language]


@functools.cache
def translator(language: str) -> Translator:
    """The translator of a supported language (see ``LANGUAGES``); loaded once per process."""
    if language not in LANGUAGES:
        raise ValueError(f"no catalog for language {language!r}")
    if language == SOURCE_LANGUAGE:
        return Translator(language, gettext.NullTranslations())
    mo = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with mo.open("rb") as compiled:
        return Translator(language, gettext.GNUTranslations(compiled))


def match_language(tag: str) -> str | None:
    """The supported language a platform's tag means, if any.

    Telegram sends IETF tags ("zh-hans", "en"), Slack a locale ("zh-CN"), a terminal a POSIX
    locale ("zh_CN.UTF-8"); people type any of them, or a name, after /language.
    """
    cleaned = tag.strip().split(".", 1)[0].split("@", 1)[0].replace("_", "-").lower()
    if not cleaned or cleaned in ("c", "posix"):
        return None
    if cleaned in _NAMES:
        return _NAMES[cleaned]
    for language, name in LANGUAGES.items():
        if cleaned in (language.lower().replace("_", "-"), name.lower()):
            return language
    primary, *rest = cleaned.split("-")
    if primary == "zh":
        return None if _TRADITIONAL.intersection(rest) else "zh_Hans"
    return primary if primary in LANGUAGES else None


ENGLISH = translator(SOURCE_LANGUAGE)
