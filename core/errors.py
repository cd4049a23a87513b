"""Parley's own error tree: SDK and HTTP errors are translated into these once, at the boundary."""

from __future__ import annotations

from core.i18n import N_


class BotError(Exception):
    """Root of every error Parley raises on purpose; carries a user-safe message."""

    user_message = N_("Something went wrong on my side. Please try again.")


class ConfigError(BotError):
    """A setting is missing or invalid; raised at start so the operator sees it at once."""


class StoreError(BotError):
    """The conversation store (Redis) failed; history is left as it was."""

    user_message = N_("I can't reach my memory store right now. Please try again shortly.")


class LeaseLost(StoreError):
    """The turn's lease went to another turn (a stall outlived it): its save is refused, for good.

    Retrying cannot help (the fence only moves forward), so the blip retry must not retry it.
    """


class LLMError(BotError):
    """The model server failed or refused a request."""

    user_message = N_("The model server returned an error. Please try again.")


class LLMUnavailable(LLMError):
    """The model server cannot be reached, timed out or dropped the stream."""

    user_message = N_("The model server is unavailable, try again shortly.")


class LLMOverloaded(LLMError):
    """The model server answered 503/429: it is up but saturated."""

    user_message = N_("The model server is busy right now, try again in a moment.")


class ModelNotFound(LLMError):
    """The configured model is not served (HTTP 404)."""

    user_message = N_("The configured model is not available on the model server.")


class ModelNotServed(LLMError):
    """A persona names a model the server does not serve: the request's fault, not the server's."""

    user_message = N_(
        "The model this persona uses is not available right now. Pick another persona."
    )


class ContextTooLong(LLMError):
    """The prompt does not fit the model's context window (HTTP 400 from vLLM)."""

    user_message = N_("This conversation is too long for the model. Use reset and try again.")

    def __init__(self, message: str, *, limit: int | None = None, prompt_tokens: int | None = None):
        super().__init__(message)
        self.limit = limit
        self.prompt_tokens = prompt_tokens


class PlatformError(BotError):
    """A messaging platform refused or failed a request."""


class RateLimited(PlatformError):
    """The platform asked us to slow down for ``retry_after`` seconds."""

    def __init__(self, retry_after: float, message: str = "rate limited"):
        super().__init__(f"{message} (retry after {retry_after:g} s)")
        self.retry_after = retry_after


class MessageGone(PlatformError):
    """The message to edit no longer exists (deleted by the user or an admin)."""


class MessageRejected(PlatformError):
    """The platform rejected the content (bad entities/markup or too long); retry as plain text."""
