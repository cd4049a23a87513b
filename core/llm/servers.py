"""Several model servers behind one LLMClient: each conversation sticks to one, moves when it fails.

A conversation's turns share their prefix, and vLLM caches prefixes per server (automatic prefix
caching), so sending every turn of a conversation to the same server saves re-reading its whole
history. Rendezvous (highest-random-weight) hashing picks that server without shared state: every
replica, before and after a restart, ranks the servers the same way for a conversation, and
removing one server moves only the conversations that were on it.

A server that fails (refused connection, 5xx, 503/429 overloaded, a stream dropped before any
token) cools down for a while: its conversations go to their next server in rendezvous order and
come back once the cool-down is over. A stream that already showed tokens is never moved: the
user would see a second, different answer glued to the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from core.clock import Clock, LoopClock
from core.errors import LLMError, LLMOverloaded, LLMUnavailable, ModelNotFound
from core.llm.client import ModelInfo, OpenAICompatibleClient
from core.llm.events import ChatMessage, SamplingParams, StreamEvent

log = logging.getLogger(__name__)

# Failures of the server rather than of the request: another server may well succeed.
# ContextTooLong and other 4xx are the request's: they go back to the caller unchanged.
SERVER_FAILURES: tuple[type[LLMError], ...] = (LLMUnavailable, LLMOverloaded, ModelNotFound)
DEFAULT_COOLDOWN = 15.0


def rendezvous_weight(affinity: str, url: str) -> int:
    """The conversation's score for one server: stable across processes (not Python's hash())."""
    digest = hashlib.blake2b(f"{affinity}\n{url}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(eq=False)
class _Server:
    """One model server and whether it is cooling down after a failure."""

    client: OpenAICompatibleClient
    down_until: float | None = None  # clock time before which it is skipped

    @property
    def url(self) -> str:
        """Its base URL."""
        return self.client.base_url


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """One server's answer to a readiness probe."""

    url: str
    info: ModelInfo | None
    error: str = ""

    @property
    def ready(self) -> bool:
        """It listed its models."""
        return self.info is not None


class ServerPool:
    """LLM_BASE_URL's servers as one LLMClient: rendezvous affinity, failover and cool-down."""

    def __init__(
        self,
        clients: Sequence[OpenAICompatibleClient],
        *,
        cooldown: float = DEFAULT_COOLDOWN,
        clock: Clock | None = None,
    ) -> None:
        if not clients:
            raise ValueError("a ServerPool needs at least one model server")
        self._servers = [_Server(client) for client in clients]
        self._cooldown = cooldown
        self._clock = clock or LoopClock()

    @property
    def servers(self) -> tuple[OpenAICompatibleClient, ...]:
        """The clients, in LLM_BASE_URL's order."""
        return tuple(s.client for s in self._servers)

    @property
    def base_url(self) -> str:
        """Every server's URL, as LLM_BASE_URL lists them (for messages to the operator)."""
        return ",".join(s.url for s in self._servers)

    async def close(self) -> None:
        """Release every server's connections."""
        await asyncio.gather(*(s.client.close() for s in self._servers))

    def ranked(self, affinity: str) -> list[OpenAICompatibleClient]:
        """Every server in ``affinity``'s rendezvous order, its own server first."""
        return [s.client for s in self._ranked(affinity)]

    def is_cooling(self, client: OpenAICompatibleClient) -> bool:
        """Whether ``client``'s server is being skipped after a recent failure."""
        return any(s.client is client and self._cooling(s) for s in self._servers)

    def _ranked(self, affinity: str) -> list[_Server]:
        """Highest rendezvous weight first; the URL breaks (astronomically unlikely) ties."""
        return sorted(
            self._servers, key=lambda s: (rendezvous_weight(affinity, s.url), s.url), reverse=True
        )

    def _cooling(self, server: _Server) -> bool:
        """Skipped: it failed less than the cool-down ago."""
        return server.down_until is not None and self._clock.now() < server.down_until

    def _candidates(self, affinity: str) -> list[_Server]:
        """The servers to try, in order: those not cooling down; all of them if every one is.

        When every server failed recently, trying them is better than refusing without trying
        (with one server this is exactly the behaviour of a single client).
        """
        ranked = self._ranked(affinity)
        return [s for s in ranked if not self._cooling(s)] or ranked

    def _failed(self, server: _Server, exc: LLMError) -> None:
        """Skip the server for the cool-down; say so once, not for every request it fails."""
        if not self._cooling(server):
            log.warning(
                "model server %s failed (%s): sending its conversations elsewhere for %g s",
                server.url,
                exc,
                self._cooldown,
            )
        server.down_until = self._clock.now() + self._cooldown

    def _succeeded(self, server: _Server) -> None:
        """The server answers: it takes its conversations back at once."""
        if server.down_until is not None:
            log.info("model server %s answers again", server.url)
            server.down_until = None

    async def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, affinity: str = ""
    ) -> AsyncGenerator[StreamEvent, None]:
        """Stream from the conversation's server, or the next one while nothing was shown."""
        failure: LLMError | None = None
        for server in self._candidates(affinity):
            shown = False
            try:
                events = server.client.stream(messages, params, affinity=affinity)
                async with contextlib.aclosing(events):  # closing it aborts the vLLM request
                    async for event in events:
                        shown = True
                        yield event
            except SERVER_FAILURES as exc:
                self._failed(server, exc)
                if shown:
                    raise  # tokens were shown: a second answer would be glued to the first
                failure = failure or exc
                continue
            self._succeeded(server)
            return
        assert failure is not None  # every candidate failed, or the loop would have returned
        raise failure

    async def model_info(self, *, refresh: bool = False, affinity: str = "") -> ModelInfo:
        """The model and context of the server ``affinity``'s next stream goes to."""
        failure: LLMError | None = None
        for server in self._candidates(affinity):
            try:
                return await server.client.model_info(refresh=refresh)
            except SERVER_FAILURES as exc:
                self._failed(server, exc)
                failure = failure or exc
        assert failure is not None
        raise failure

    async def check(self, probe_seconds: float) -> list[ServerStatus]:
        """Ask every server for its models now (readiness); one that fails cools down."""

        async def probe(server: _Server) -> ServerStatus:
            try:
                async with asyncio.timeout(probe_seconds):
                    info = await server.client.model_info(refresh=True)
            except TimeoutError:
                self._failed(server, LLMUnavailable("no answer to a readiness probe"))
                return ServerStatus(server.url, None, "unreachable: TimeoutError")
            except LLMError as exc:
                self._failed(server, exc)
                return ServerStatus(server.url, None, f"unreachable: {type(exc).__name__}")
            return ServerStatus(server.url, info)

        return list(await asyncio.gather(*(probe(s) for s in self._servers)))
