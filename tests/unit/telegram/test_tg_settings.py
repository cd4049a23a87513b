"""TelegramSettings: bad values stop Parley at start with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.telegram.settings import GroupScope, StreamMode, TelegramSettings
from core.errors import ConfigError
from core.settings import load_settings

TOKEN = "123456:AAF-abc_def"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env from the working tree
    for name in ("BOT_TOKEN", "API_URL", "WEBHOOK_URL", "WEBHOOK_SECRET", "WEBHOOK_LISTEN",
                 "GROUP_SCOPE", "STREAM_MODE"):  # fmt: skip
        monkeypatch.delenv(f"TELEGRAM_{name}", raising=False)


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    settings = load_settings(TelegramSettings)
    assert settings.telegram_bot_token.get_secret_value() == TOKEN
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.telegram_webhook_url is None
    assert settings.listen == ("0.0.0.0", 8443)
    assert settings.telegram_group_scope is GroupScope.USER
    assert settings.telegram_stream_mode is StreamMode.EDIT
    assert TOKEN not in repr(settings)


def test_token_is_required_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        load_settings(TelegramSettings)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "not a token")
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        load_settings(TelegramSettings)


def test_webhook_needs_a_valid_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_URL", "https://bot.example.com/tg/hook")
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET is required"):
        load_settings(TelegramSettings)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "has spaces!")
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        load_settings(TelegramSettings)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "Ok_secret-123")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_LISTEN", "[::]:9443")
    settings = load_settings(TelegramSettings)
    assert settings.webhook_path == "/tg/hook"
    assert settings.listen == ("::", 9443)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELEGRAM_API_URL", "ftp://example.com"),
        ("TELEGRAM_WEBHOOK_LISTEN", "8443"),
        ("TELEGRAM_GROUP_SCOPE", "everyone"),
        ("TELEGRAM_STREAM_MODE", "fast"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings(TelegramSettings)


def test_api_url_loses_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/")
    assert load_settings(TelegramSettings).telegram_api_url == "http://127.0.0.1:8081"
