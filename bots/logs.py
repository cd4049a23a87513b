"""Logging for operators: plain or JSON lines, with secrets redacted before anything is written."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable

_BOT_TOKEN = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{30,}")  # Telegram tokens, e.g. in URLs
_SLACK_TOKEN = re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+")
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^@\s]+@")


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
    return redactor
