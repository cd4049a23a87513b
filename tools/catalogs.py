"""Parley's message catalogs: extract the texts from the code, merge them into every language's
``.po``, and compile the ``.mo`` Parley loads (``python -m tools.catalogs``; needs Babel).

Run it after changing a text, translate what the ``.po`` files then mark as new or fuzzy, and
run it again: the tests check that the template matches the code, that every catalog
translates every text, and that each ``.mo`` is compiled from its ``.po``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from core.i18n import DOMAIN, LANGUAGES, LOCALE_DIR, SOURCE_LANGUAGE

ROOT = Path(__file__).resolve().parents[1]
HEADER = (
    "# Parley's texts{language}.\n"
    "# Edit the translations here, then run `python -m tools.catalogs` to compile them."
)
SOURCES = ("core", "bots")
TEMPLATE = LOCALE_DIR / f"{DOMAIN}.pot"


def po_path(language: str) -> Path:
    """Where a language's editable catalog lives."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(language: str) -> Path:
    """Where its compiled form lives (what Parley loads)."""
    return po_path(language).with_suffix(".mo")


def extract() -> Catalog:
    """Every text the code looks up, with where it is used (``gettext``, ``ngettext``, ``N_``)."""
    template = Catalog(
        project="Parley",
        domain=DOMAIN,
        charset="utf-8",
        header_comment=HEADER.format(language=""),
        msgid_bugs_address="",
    )
    for source in SOURCES:
        found = extract_from_dir(
            ROOT / source,
            method_map=[("**.py", "python")],
            keywords=DEFAULT_KEYWORDS,
            comment_tags=("i18n:",),
        )
        for filename, lineno, message, comments, context in found:
            template.add(
                message,
                locations=[(f"{source}/{filename}", lineno)],
                auto_comments=comments,
                context=context,
                flags=("python-brace-format",) if "{" in str(message) else (),
            )
    return template


def read(path: Path, locale: str | None = None) -> Catalog:
    """A .po or .pot file."""
    with path.open("rb") as handle:
        return read_po(handle, locale=locale, domain=DOMAIN)


def _write(catalog: Catalog, path: Path) -> None:
    """A .po/.pot without the creation date, so unchanged texts leave the file unchanged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, width=100, omit_header=False, sort_output=False)


def compile_mo(language: str) -> bytes:
    """A language's .po compiled (fuzzy entries left out, as gettext does)."""
    import io

    buffer = io.BytesIO()
    write_mo(buffer, read(po_path(language), language), use_fuzzy=False)
    return buffer.getvalue()


def main() -> int:
    """Extract, merge and compile; report what still needs a translator."""
    template = extract()
    if TEMPLATE.exists():  # the same texts: keep the date, so the files change only with them
        previous = read(TEMPLATE)
        if _ids(previous) == _ids(template):
            template.creation_date = previous.creation_date
    _write(template, TEMPLATE)
    untranslated = 0
    for language in LANGUAGES:
        if language == SOURCE_LANGUAGE:
            continue
        path = po_path(language)
        catalog = read(path, language) if path.exists() else Catalog(locale=language, domain=DOMAIN)
        catalog.update(template, update_header_comment=False)
        catalog.header_comment = HEADER.format(language=f" in {language}")
        catalog.project, catalog.version, catalog.msgid_bugs_address = "Parley", "", ""
        catalog.last_translator = catalog.language_team = "Parley"
        catalog.revision_date = template.creation_date
        catalog.fuzzy = False
        catalog.obsolete.clear()
        _write(catalog, path)
        mo_path(language).write_bytes(compile_mo(language))
        todo = [m.id for m in catalog if m.id and (m.fuzzy or not _translated(m.string))]
        untranslated += len(todo)
        print(f"{language}: {len(catalog) - 1} texts, {len(todo)} to translate")
    return 1 if untranslated else 0


def _ids(catalog: Catalog) -> set[object]:
    """The message ids a catalog holds (a plural text's id is its pair of forms)."""
    return {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}


def _translated(string: object) -> bool:
    """Whether a message's translation (one string, or one per plural form) is complete."""
    if isinstance(string, tuple | list):
        return all(string)
    return bool(string)


if __name__ == "__main__":
    sys.exit(main())
