"""The model server's HTTP API on one pooled aiohttp session: JSON requests and SSE streams.

The ``openai`` package brings httpx2 → httpcore2 → anyio → h11, which cost about 133 µs of CPU
per SSE chunk before any parsing; aiohttp reads the same stream for a fraction of that
(docs/PERFORMANCE.md). Every aiohttp error is translated here, once, into ``core.errors``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import orjson

from core.errors import ContextTooLong, LLMError, LLMOverloaded, LLMUnavailable, ModelNotFound

_CONTEXT_RE = re.compile(
    r"maximum context length is (\d+) tokens.*?(?:contains|requested) (?:at least )?(\d+)", re.S
)
# Older vLLM counts prompt and completion together: "you requested N tokens (P in the messages, …".
_PROMPT_PART_RE = re.compile(r"(\d+) in the messages")

# A request that could not be sent (nothing listening, a pooled connection the server had closed,
# the connect timeout): sending it again is safe, so core.retry may.
NOT_SENT: tuple[type[BaseException], ...] = (aiohttp.ClientConnectionError, TimeoutError)
# A stream under way that broke (a dropped connection, a truncated chunked body).
BROKEN: tuple[type[BaseException], ...] = (aiohttp.ClientError,)


class ModelHTTP:
    """One model server's base URL, API key and connection pool (no cap on connections)."""

    def __init__(self, base_url: str, api_key: str, *, connect: float, read: float) -> None:
        self._base_url = base_url
        self._headers = {
            "Authorization": f"Bearer {api_key or 'EMPTY'}",
            "Content-Type": "application/json",
        }
        # Non-streaming requests (/models, /tokenize) and a stream's response head.
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect, sock_read=read
        )
        # A stream's body: the first-token and idle limits are enforced per token by the reader.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect
        )
        self._session: aiohttp.ClientSession | None = None

    def _pool(self) -> aiohttp.ClientSession:
        """The session, opened on first use (aiohttp wants a running event loop for it)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def close(self) -> None:
        """Release every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(self, url: str) -> object:
        """GET ``url`` and decode its JSON (anything else is returned as text)."""
        return await self._json("GET", url, None)

    async def post_json(self, url: str, body: dict[str, Any]) -> object:
        """POST ``body`` to ``url`` and decode the JSON answer."""
        return await self._json("POST", url, body)

    async def _json(self, method: str, url: str, body: dict[str, Any] | None) -> object:
        """One request and its whole answer; HTTP errors become core.errors.

        A request that could not be sent raises one of ``NOT_SENT`` untranslated, so the caller
        can send it again (core.retry) and translate it with ``unreachable`` when it gives up.
        """
        data = orjson.dumps(body) if body is not None else None
        try:
            async with self._pool().request(
                method, self._url(url), data=data, timeout=self._timeout
            ) as response:
                status, raw = response.status, await response.read()
        except NOT_SENT:
            raise
        except aiohttp.ClientError as exc:
            raise LLMUnavailable(f"the model server's answer broke off: {exc!r}") from exc
        if status >= 400:
            raise status_error(status, raw)
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw.decode(errors="replace")

    async def open_stream(
        self, url: str, body: dict[str, Any], headers: dict[str, str] | None
    ) -> aiohttp.ClientResponse:
        """POST ``body`` and return once the head arrived (``NOT_SENT`` untranslated).

        Read ``response.content`` and always ``end`` it.
        """
        data = orjson.dumps(body)
        try:
            async with asyncio.timeout(self._timeout.sock_read):
                response = await self._pool().post(
                    self._url(url), data=data, headers=headers, timeout=self._stream_timeout
                )
                if response.status < 400:
                    return response
                async with response:
                    status, raw = response.status, await response.read()
        except NOT_SENT:
            raise
        except aiohttp.ClientError as exc:
            raise LLMUnavailable(f"the model server's answer broke off: {exc!r}") from exc
        raise status_error(status, raw)

    def _url(self, url: str) -> str:
        """An absolute URL, or one relative to the base URL (``/models``)."""
        return url if "://" in url else f"{self._base_url}{url}"


def end(response: aiohttp.ClientResponse) -> None:
    """Done with a stream: its connection goes back to the pool, or is closed if unfinished.

    Closing the connection is how vLLM learns to abort a request that is still generating.
    """
    if response.content.at_eof():
        response.release()
    else:
        response.close()


def unreachable(exc: BaseException) -> LLMUnavailable:
    """A request that could not be sent or answered at all."""
    if isinstance(exc, TimeoutError):
        return LLMUnavailable("the model server timed out")
    cause = getattr(exc, "os_error", None) or exc
    return LLMUnavailable(f"cannot reach the model server: {cause}")


def status_error(status: int, raw: bytes) -> LLMError:
    """Map an HTTP error answer onto Parley's errors, with the server's own message."""
    message = _error_message(status, raw)
    if status == 404:
        return ModelNotFound(message)
    if status in (429, 503):
        return LLMOverloaded(message)
    if status == 400 and "maximum context length" in message:
        match = _CONTEXT_RE.search(message)
        limit, prompt = (int(match[1]), int(match[2])) if match else (None, None)
        if part := _PROMPT_PART_RE.search(message):
            prompt = int(part[1])
        return ContextTooLong(message, limit=limit, prompt_tokens=prompt)
    if status >= 500:
        return LLMUnavailable(f"the model server failed ({status}): {message}")
    return LLMError(f"the model server refused the request ({status}): {message}")


def _error_message(status: int, raw: bytes) -> str:
    """The server's own message from an OpenAI-style error body, else the body itself."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return f"Error code: {status} - {raw.decode(errors='replace')[:500]}"
