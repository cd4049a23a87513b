"""Slack Web API failures → Parley's error tree, in one place."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

from core.errors import MessageGone, MessageRejected, PlatformError, RateLimited

# Errors that mean "this content cannot be shown"; plain text may still get through.
REJECTED = frozenset(
    {
        "msg_too_long",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_chunks",
        "no_text",
        "markdown_text_conflict",
    }
)
# The message we were editing is not there (or no longer ours to edit).
GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
# A native stream that can no longer be appended to; the message itself still exists.
STREAM_OVER = frozenset({"message_not_in_streaming_state", "stopped_by_user", "message_not_found"})
DEFAULT_RETRY_AFTER = 1.0


def error_code(exc: SlackApiError) -> str:
    """Slack's error string (`ratelimited`, `msg_too_long`, …)."""
    data = exc.response.data
    return str(data.get("error", "")) if isinstance(data, dict) else ""


def _retry_after(exc: SlackApiError) -> float:
    """The Retry-After header in seconds; Slack sends whole seconds."""
    raw = exc.response.headers.get("Retry-After") if exc.response.headers else None
    try:
        return max(0.0, float(raw)) if raw is not None else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


# Everything a Web API call can raise that is Slack's or the network's fault.
SLACK_FAILURES: tuple[type[Exception], ...] = (SlackClientError, aiohttp.ClientError, TimeoutError)


def translate(exc: Exception, method: str) -> PlatformError:
    """Map one SDK/HTTP failure to the core's error tree (never includes tokens or payloads)."""
    if isinstance(exc, SlackApiError):
        code = error_code(exc)
        if exc.response.status_code == 429 or code == "ratelimited":
            return RateLimited(_retry_after(exc), f"slack {method}: ratelimited")
        if code in GONE:
            return MessageGone(f"slack {method}: {code}")
        if code in REJECTED:
            return MessageRejected(f"slack {method}: {code}")
        return PlatformError(f"slack {method}: {code or exc.response.status_code}")
    return PlatformError(f"slack {method}: {type(exc).__name__}")
