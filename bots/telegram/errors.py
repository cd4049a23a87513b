"""python-telegram-bot errors → Parley's error tree, translated once, here at the boundary."""

from __future__ import annotations

import datetime as dt
import warnings

from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from core.errors import BotError, MessageGone, MessageRejected, PlatformError, RateLimited

# Bot API descriptions (PTB strips "Bad Request: " and capitalises); matched in lower case.
_NOT_MODIFIED = ("message is not modified",)
_GONE = (
    "message to edit not found",
    "message to delete not found",
    "message_id_invalid",
    "message can't be edited",
)
_REJECTED = (
    "can't parse entities",
    "message is too long",
    "message_too_long",
    "entities_too_long",
    "text must be non-empty",
    "message text is empty",
    "text_draft_too_long",
)


def is_not_modified(exc: TelegramError) -> bool:
    """The edit would change nothing: a no-op, never an error."""
    return isinstance(exc, BadRequest) and _matches(exc, _NOT_MODIFIED)


def retry_after_seconds(exc: RetryAfter) -> float:
    """Seconds to wait, whether PTB hands out an int or (PTB_TIMEDELTA) a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB's int→timedelta deprecation notice
        value = exc.retry_after
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value)


def translate(exc: TelegramError) -> BotError:
    """The Parley error a Telegram error stands for; the original stays as ``__cause__``."""
    if isinstance(exc, RetryAfter):
        return RateLimited(retry_after_seconds(exc), "Telegram flood control")
    if isinstance(exc, BadRequest):
        if _matches(exc, _GONE):
            return MessageGone(exc.message)
        if _matches(exc, _REJECTED):
            return MessageRejected(exc.message)
        return PlatformError(f"Telegram refused the request: {exc.message}")
    if isinstance(exc, Forbidden):
        return PlatformError(f"Telegram forbids it: {exc.message}")
    if isinstance(exc, NetworkError):  # includes TimedOut
        return PlatformError(f"cannot reach Telegram: {exc.message}")
    return PlatformError(f"Telegram error: {exc.message}")


def _matches(exc: TelegramError, needles: tuple[str, ...]) -> bool:
    text = exc.message.lower()
    return any(needle in text for needle in needles)
