"""Logging for operators: plain or JSON lines, with secrets redacted before anything is written."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from types import TracebackType

_BOT_TOKEN = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}")  # Telegram tokens, e.g. in URLs
_SLACK_TOKEN = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+")
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")
_LINE_LIMIT = 500  # characters of an error message on the one line an operator reads
_DETAILS = "set LOG_LEVEL=DEBUG for details"


class RedactingFilter(logging.Filter):
    """Removes known secret values and secret-shaped strings from every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """The text with every secret replaced by ***."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = _BOT_TOKEN.sub("***", text)
        text = _SLACK_TOKEN.sub("***", text)
        return _URL_PASSWORD.sub(r"\1***@", text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message now, redacted, so no formatter sees the raw arguments."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


# Lines printed outside logging (the error `parley` ends with) are redacted with what logging
# knows: the secret-shaped patterns always, the configured secrets once setup_logging has run.
_active = RedactingFilter()
_configured = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        """Time, level, logger, message (and the error, if any)."""
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            data["error"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def setup_logging(secrets: Iterable[str] = (), default_level: str = "INFO") -> RedactingFilter:
    """Configure the root logger from LOG_LEVEL / LOG_FORMAT; return the redactor for reuse."""
    level = os.environ.get("LOG_LEVEL", default_level).upper()
    handler = logging.StreamHandler(sys.stderr)
    redactor = RedactingFilter(secrets)
    handler.addFilter(redactor)
    if os.environ.get("LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if level in logging.getLevelNamesMapping() else "INFO")
    for noisy in ("httpx", "httpx2", "httpcore", "openai", "hpack", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
    global _active, _configured
    _active, _configured = redactor, True
    return redactor


def one_line(text: str) -> str:
    """A message fit for the single line a start-up failure prints: redacted, unwrapped, short."""
    text = " ".join(_active.redact(text).split())
    return text if len(text) <= _LINE_LIMIT else text[: _LINE_LIMIT - 1] + "…"


def last_resort_line(exc: BaseException) -> str:
    """The line for an error nobody expected: its type and message, never a traceback or secret."""
    message = one_line(str(exc))
    head = f"parley: unexpected error ({type(exc).__name__})"
    return f"{head}: {message}; {_DETAILS}" if message else f"{head}; {_DETAILS}"


def report_unexpected(exc: BaseException) -> None:
    """Print the last-resort line; the traceback goes to the redacting log, shown at DEBUG."""
    if not _configured and os.environ.get("LOG_LEVEL", "").upper() == "DEBUG":
        setup_logging()  # it failed before logging was set up: the redactor must still be there
    logging.getLogger("parley").debug(
        "traceback of the unexpected error", exc_info=(type(exc), exc, exc.__traceback__)
    )
    print(last_resort_line(exc), file=sys.stderr, flush=True)


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    """sys.excepthook: an exception escaping everything ends in one line, not a traceback."""
    if issubclass(exc_type, KeyboardInterrupt):
        return  # Ctrl-C is an answer, not an error
    report_unexpected(exc.with_traceback(tb))


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    """threading.excepthook: a thread that dies says so in one line (the process goes on)."""
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return  # as the default hook: a thread's SystemExit is its quiet end
    report_unexpected(args.exc_value.with_traceback(args.exc_traceback))


def install_last_resort() -> None:
    """No traceback (and no secret in one) reaches the terminal, in the main thread or any other."""
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
