"""The message catalogs: complete in every language, in step with the code, compiled, and
chosen from what each platform says about a person's language."""

from __future__ import annotations

import re

import pytest
from babel.messages.mofile import read_mo

from core import texts
from core.commands import CATALOGUE, CommandName
from core.i18n import ENGLISH, LANGUAGES, SOURCE_LANGUAGE, match_language, translator
from core.phrases import Phrases
from core.surfaces import TELEGRAM
from tools.catalogs import TEMPLATE, _ids, extract, mo_path, po_path, read

TRANSLATED = [language for language in LANGUAGES if language != SOURCE_LANGUAGE]
_PLACEHOLDER = re.compile(r"\{(\w*)\}")
_MARKUP = ("**", "`")


def _forms(value: object) -> list[str]:
    """A message's id or translation as a list of its forms."""
    return [str(v) for v in value] if isinstance(value, tuple | list) else [str(value)]


def test_the_template_lists_exactly_the_texts_the_code_looks_up() -> None:
    in_code, in_template = _ids(extract()), _ids(read(TEMPLATE))
    assert in_code - in_template == set(), "new texts: run python -m tools.catalogs"
    assert in_template - in_code == set(), "stale texts: run python -m tools.catalogs"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_text_is_translated_with_its_placeholders_and_markup(language: str) -> None:
    catalog = read(po_path(language), language)
    assert _ids(catalog) == _ids(read(TEMPLATE)), "run python -m tools.catalogs"
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        source = _forms(message.id)
        translations = _forms(message.string)
        assert len(translations) == catalog.num_plurals, message.id
        for translation in translations:
            assert translation, f"{language} lacks {message.id!r}"
            assert set(_PLACEHOLDER.findall(translation)) == set(
                _PLACEHOLDER.findall(source[-1])
            ), (message.id, translation)
            for mark in _MARKUP:
                assert translation.count(mark) == source[0].count(mark), (message.id, mark)
            for command in re.findall(r"/[a-z]+|--[a-z]+|\| (?:clear|auto)\]", source[0]):
                assert command in translation, (message.id, command)


@pytest.mark.parametrize("language", TRANSLATED)
def test_each_compiled_catalog_is_compiled_from_its_po(language: str) -> None:
    with mo_path(language).open("rb") as compiled:
        loaded = read_mo(compiled)
    po = read(po_path(language), language)
    compiled_texts = {tuple(_forms(m.id)): _forms(m.string) for m in loaded if m.id}
    po_texts = {tuple(_forms(m.id)): _forms(m.string) for m in po if m.id}
    assert compiled_texts == po_texts, "run python -m tools.catalogs"


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("zh", "zh_Hans"),
        ("zh-hans", "zh_Hans"),
        ("zh-CN", "zh_Hans"),
        ("zh-sg", "zh_Hans"),
        ("zh_CN.UTF-8", "zh_Hans"),
        ("zh_Hans", "zh_Hans"),
        ("中文", "zh_Hans"),
        ("en", "en"),
        ("en-US", "en"),
        ("en_GB.UTF-8", "en"),
        ("zh-hant", None),  # Traditional Chinese has no catalog yet
        ("zh-TW", None),
        ("ru", None),
        ("C.UTF-8", None),
        ("", None),
    ],
)
def test_platform_tags_name_a_catalog(tag: str, language: str | None) -> None:
    assert match_language(tag) == language


def test_texts_and_phrases_come_out_in_the_language_asked() -> None:
    zh = translator("zh_Hans")
    assert Phrases().in_language(zh).thinking_start == "💭 思考中…"
    assert Phrases().in_language(ENGLISH) == Phrases()
    stop = Phrases(stop_command="/stop").in_language(zh)
    assert (
        stop.busy.format(stop_hint=stop.stop_hint)
        == "我还在回答你的上一条消息。发送 /stop 可以取消。"
    )
    assert texts.removed_all(zh, 1234) == "已删除全部 1,234 段对话。"
    assert texts.removed_all(ENGLISH, 1) == "Deleted all 1 conversation."
    help_zh = texts.help_text(zh, TELEGRAM, TELEGRAM.specs(admin=False))
    assert "/reset — 忘掉我们在这里的对话" in help_zh
    assert "/language [代码 | auto]" in help_zh
    summaries = {zh.gettext(spec.summary) for spec in CATALOGUE}
    assert not summaries & {spec.summary for spec in CATALOGUE}  # every menu entry translated
    assert TELEGRAM.bare(CommandName.LANGUAGE) == "/language"
