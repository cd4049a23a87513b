"""Slack settings: a missing secret or a bad value stops Parley at start with the variable named."""

from __future__ import annotations

import pytest

from bots.slack.app import secret_values
from bots.slack.settings import SlackSettings, StreamMode, ThreadScope, parse_listen
from core.errors import ConfigError
from core.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_HTTP_LISTEN", "SLACK_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")


def test_http_mode_needs_the_signing_secret() -> None:
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is required"):
        load_settings(SlackSettings)


def test_http_mode_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    settings = load_settings(SlackSettings)
    assert not settings.socket_mode
    assert settings.listen == ("0.0.0.0", 3000)
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.slack_thread_scope is ThreadScope.USER
    assert settings.slack_stream_mode is StreamMode.UPDATE
    assert sorted(secret_values(settings)) == ["s3cret", "xoxb-1"]
    assert "s3cret" not in repr(settings)


def test_socket_mode_when_an_app_token_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    monkeypatch.setenv("SLACK_STREAM_MODE", "native")
    monkeypatch.setenv("SLACK_THREAD_SCOPE", "thread")
    settings = load_settings(SlackSettings)
    assert settings.socket_mode
    assert settings.slack_stream_mode is StreamMode.NATIVE
    assert settings.slack_thread_scope is ThreadScope.THREAD


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_HTTP_LISTEN", "nowhere"),
        ("SLACK_STREAM_MODE", "fast"),
        ("SLACK_THREAD_SCOPE", "everyone"),
        ("SLACK_MESSAGE_CHARS", "50000"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings(SlackSettings)


@pytest.mark.parametrize(
    ("listen", "parsed"),
    [("0.0.0.0:3000", ("0.0.0.0", 3000)), ("[::]:8080", ("::", 8080)), (":80", ("0.0.0.0", 80))],
)
def test_listen_addresses(listen: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(listen) == parsed
