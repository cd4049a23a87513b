"""The last resort: an error nobody expected ends `parley` with one redacted line, no traceback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bots import cli, logs
from bots.logs import last_resort_line

API_KEY = "sk-live-9f8e7d6c5b4a39281706"  # LLM_API_KEY: a known secret
TOKEN = "7012345678:AAHf3x9Kq2LmNpQrStUvWxYz0123456789A"  # secret-shaped, known or not
LINE = "parley: unexpected error (RuntimeError): "
DETAILS = "; set LOG_LEVEL=DEBUG for details"


def boom() -> RuntimeError:
    """An error whose message holds secrets and spans lines, as SDK errors do."""
    return RuntimeError(f"cannot use {API_KEY}\n  at https://api.telegram.org/bot{TOKEN}/getMe")


def assert_clean(text: str) -> None:
    """No secret, and no piece of one, anywhere."""
    for secret in (API_KEY, TOKEN):
        assert secret not in text
        assert secret[-12:] not in text


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """`main` installs hooks and logging for the whole process: put everything back afterwards."""
    root = logging.getLogger()
    level = root.level
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    monkeypatch.setattr(logs, "_active", logs._active)
    monkeypatch.setattr(logs, "_configured", logs._configured)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for name in list(os.environ):
        if name.startswith(("LLM_", "REDIS", "LOG_", "TELEGRAM_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("LLM_API_KEY", API_KEY)
    yield
    root.setLevel(level)


def fail_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make `parley telegram` raise an error no branch of main expects."""

    def explode(name: str, settings: object) -> int:
        """Stands in for the adapter."""
        raise boom()

    monkeypatch.setattr(cli, "_run_platform", explode)


@pytest.mark.usefixtures("isolated")
def test_main_ends_an_unexpected_error_with_one_redacted_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fail_inside(monkeypatch)
    assert cli.main(["telegram"]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"{LINE}cannot use *** at https://api.telegram.org/bot***/getMe{DETAILS}"]
    assert "Traceback" not in err
    assert sys.excepthook is logs._excepthook
    assert threading.excepthook is logs._thread_excepthook


@pytest.mark.usefixtures("isolated")
def test_log_level_debug_logs_the_traceback_redacted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    fail_inside(monkeypatch)
    assert cli.main(["telegram"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "in explode" in err
    assert_clean(err)
    assert err.splitlines()[-1].startswith(LINE)


def test_the_line_is_short_and_says_the_type_when_the_message_is_empty() -> None:
    assert last_resort_line(KeyError()) == f"parley: unexpected error (KeyError){DETAILS}"
    line = last_resort_line(ValueError("x" * 5000 + TOKEN))
    assert len(line) < 600
    assert "\n" not in line
    assert TOKEN not in last_resort_line(ValueError(f"token {TOKEN}"))


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter, so the hooks meet an exception nothing catches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOG_", "LLM_"))}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_excepthook_turns_an_escaping_error_into_one_line(tmp_path: Path) -> None:
    code = f"""
from bots.logs import install_last_resort, setup_logging
setup_logging([{API_KEY!r}])
install_last_resort()
raise RuntimeError("escaped with {API_KEY} and {TOKEN}")
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == f"{LINE}escaped with *** and ***{DETAILS}"
    assert_clean(result.stdout + result.stderr)


def test_a_dying_thread_says_so_in_one_line_and_the_process_goes_on(tmp_path: Path) -> None:
    code = f"""
import threading
from bots.logs import install_last_resort, setup_logging
setup_logging([{API_KEY!r}])
install_last_resort()
def work():
    raise RuntimeError("thread saw {API_KEY}")
thread = threading.Thread(target=work)
thread.start()
thread.join()
print("still running")
"""
    result = run_python(code, tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "still running"
    assert result.stderr.strip() == f"{LINE}thread saw ***{DETAILS}"
