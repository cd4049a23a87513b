"""Which log records are the bot's: the one filter behind every "nothing logged an error" check.

A test process hosts the bot *and* the fakes it talks to (fake Telegram, Slack and vLLM, the
forwarder: aiohttp servers on loopback). On a busy machine a fake's server logs things like
"Connection lost" when the bot's HTTP client gives up on a slow request and retries; that is
the fake's log, not the bot's error. So checks on captured logs count only:

* the bot's own loggers: its packages (``core``, ``bots``, ``parley``) and the SDKs it uses as
  a client (``telegram``, ``slack_bolt``, ``slack_sdk``, ``openai``, ``redis``, ``httpx``);
* ``asyncio``'s reports of unhandled exceptions ("Task exception was never retrieved",
  "Exception in callback", unclosed sessions) unless they point only at test code: asyncio
  logs for every task in the process, the bot's included;
* aiohttp's server logger when the failure passes through the bot's own code: the bot's
  webhook and Slack event servers are aiohttp servers too, and a crash in their handlers is
  the bot's. The fakes' servers log under their own names (``tests.fakes.*``, see
  `fake_server_logger`), so nothing of theirs lands there.

Never counted: the fakes' loggers (``tests.*``), aiohttp's access and web loggers, and any
other library's. A bot process's own log (a file or stderr of `python -m bots …`) holds only
the bot's output: `unhandled_in_text` reads all of it.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fakes import this module in processes of their own, without pytest
    import pytest

ROOT = Path(__file__).resolve().parents[2]

BOT_LOGGERS = (
    "core",
    "bots",
    "parley",
    "telegram",
    "slack_bolt",
    "slack_sdk",
    "openai",
    "redis",
    "httpx",
)
# The fakes' own loggers and aiohttp's server-side ones; ``aiohttp.server`` is judged apart.
FAKE_LOGGERS = ("tests", "aiohttp.access", "aiohttp.web", "aiohttp.websocket")
_ASYNCIO = "asyncio"
_SERVER = "aiohttp.server"

# Where the bot's code runs from: its packages in the checkout, the SDKs in site-packages.
_BOT_CODE = (
    f"{ROOT}/core/",
    f"{ROOT}/bots/",
    *(f"/site-packages/{package}/" for package in BOT_LOGGERS[3:]),
)
_TEST_CODE = f"{ROOT}/tests/"

# What an unhandled exception leaves in a Python log.
PROBLEMS = re.compile(
    r"Traceback \(most recent call last\)|Task exception was never retrieved"
    r"|Exception in callback|Unclosed client session|Unclosed connector"
)


def fake_server_logger(fake: str) -> logging.Logger:
    """The logger a fake's aiohttp server reports on (``AppRunner(..., logger=...)``).

    Its own name keeps the fake's server-side complaints (a client that went away, a request
    cut mid-body) apart from aiohttp's default ``aiohttp.server``, which the bot's servers use.
    """
    return logging.getLogger(f"tests.fakes.{fake}")


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _text(record: logging.LogRecord) -> str:
    """The message and, if any, the traceback as a log would show them."""
    text = record.getMessage()
    if record.exc_text:
        text += "\n" + record.exc_text
    elif record.exc_info:
        text += "\n" + logging.Formatter().formatException(record.exc_info)
    return text


def _in_bot_code(text: str) -> bool:
    return any(path in text for path in _BOT_CODE)


def is_bots(record: logging.LogRecord) -> bool:
    """Whether the record is the bot's (see the module docstring), not a fake's or a library's."""
    name = record.name
    if _under(name, BOT_LOGGERS):
        return True
    if _under(name, FAKE_LOGGERS):
        return False
    if name == _ASYNCIO:  # the loop reports for every task: the bot's unless only tests show
        text = _text(record)
        return _in_bot_code(text) or _TEST_CODE not in text
    if _under(name, (_SERVER,)):  # the bot's own aiohttp servers: only a handler's failure
        return _in_bot_code(_text(record))
    return False


def bot_records(records: Iterable[logging.LogRecord]) -> list[logging.LogRecord]:
    """The bot's records among ``records``, in order."""
    return [record for record in records if is_bots(record)]


def captured(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every record the test captured so far: its setup's, its call's and the current phase's.

    A garbage collection runs first, so a task that died unseen reports it now (asyncio logs
    "Task exception was never retrieved" when the task is collected), not in a later test.
    """
    gc.collect()
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    return list({id(record): record for record in records}.values())


def describe(record: logging.LogRecord) -> str:
    """One line for an assertion message: level, logger and the start of the message."""
    return f"{record.levelname} {record.name}: {record.getMessage()[:300]}"


def errors_logged(records: Iterable[logging.LogRecord]) -> list[str]:
    """The bot's records at ERROR or above, or carrying a traceback (warnings are fine)."""
    return [
        describe(record)
        for record in bot_records(records)
        if record.levelno >= logging.ERROR or record.exc_info or record.exc_text
    ]


def unhandled_logged(records: Iterable[logging.LogRecord]) -> list[str]:
    """The bot's records that carry an exception or say one went unhandled."""
    return [
        describe(record)
        for record in bot_records(records)
        if record.exc_info or record.exc_text or PROBLEMS.search(record.getMessage())
    ]


def unhandled_in_text(text: str) -> list[str]:
    """Lines of a bot process's log (stderr) that show an unhandled exception."""
    return [line for line in text.splitlines() if PROBLEMS.search(line)]


def assert_no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The bot logged no error and no stack trace in this test (the fakes' logs do not count)."""
    errors = errors_logged(captured(caplog))
    assert errors == [], "\n".join(errors)


def assert_nothing_unhandled(caplog: pytest.LogCaptureFixture) -> None:
    """No exception of the bot's went unhandled in this test (the fakes' logs do not count)."""
    problems = unhandled_logged(captured(caplog))
    assert problems == [], "\n".join(problems)
