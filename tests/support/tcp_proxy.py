"""A TCP proxy on loopback that can lose the reply to a chosen request: a network blip.

Bytes pass through unchanged both ways. ``lose_reply_to(marker)`` arms it: the next client
chunk holding ``marker`` still reaches the server (so the command is applied), but the
server's answer is dropped and both connections are closed, as when a link dies between a
write and its acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import json


class LossyProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_port``; loses one armed reply."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._marker: bytes | None = None
        self.lost = 0  # replies dropped so far
        self._streams: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """A redis:// URL through the proxy."""
        assert self._server is not None
        return f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    def lose_reply_to(self, marker: bytes) -> None:
        """Drop the answer to the next request holding ``marker``."""
        self._marker = marker

    async def start(self) -> None:
        """Listen on an ephemeral port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._streams):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """Pipe one client connection to a new server connection."""
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self._target)
        self._streams.update((client_w, server_w))
        cut = asyncio.Event()

        async def upstream() -> None:
            while chunk := await client_r.read(65536):
                if self._marker is not None and self._marker in chunk:
                    self._marker = None
                    cut.set()  # the reply to this one is lost
                server_w.write(chunk)
                await server_w.drain()

        async def downstream() -> None:
            while chunk := await server_r.read(65536):
                if cut.is_set():
                    self.lost += 1
                    return
                client_w.write(chunk)
                await client_w.drain()

        try:
            tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for writer in (client_w, server_w):
                self._streams.discard(writer)
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()


class HoldingProxy:
    """Forwards ``127.0.0.1:<port>`` to an HTTP server on ``target_port``, and can meddle once.

    Tests against a real model server use it where the timing of a fast server would decide
    the outcome. A tiny model writes its whole reply in a blink; on a busy machine all of it can
    sit in the client's socket before the client acts on its first token.

    * ``hold_reply_to(marker, after=n)``: the reply to the next request holding ``marker`` passes
      on only its first ``n`` bytes; the rest stays behind (in the proxy and the server's
      socket) until ``cut()`` drops every connection, as a crash on the way would. What a
      client has received when its server dies no longer depends on how fast it read.
    * ``amend_request(marker, fields)``: the next request holding ``marker`` has ``fields``
      added to its JSON body (e.g. vLLM's ``min_tokens``: a reply long enough that a stop
      surely reaches the server while it is still generating).
    """

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._hold: tuple[bytes, int] | None = None
        self._amend: tuple[bytes, dict[str, object]] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.held = 0  # replies to a marked request (passed on only in part if long enough)
        self.amended = 0  # requests whose body was amended

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the root URL a client uses instead of the server's)."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def hold_reply_to(self, marker: bytes, *, after: int) -> None:
        """Pass on only the first ``after`` bytes of the reply to the next request with
        ``marker`` (e.g. its request line)."""
        self._hold = (marker, after)

    def amend_request(self, marker: bytes, fields: dict[str, object]) -> None:
        """Add ``fields`` to the JSON body of the next request with ``marker``."""
        self._amend = (marker, fields)

    def cut(self) -> None:
        """Drop every connection at once, both ways: what was held back is lost."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def start(self) -> None:
        """Listen on an ephemeral port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        """Pipe one client connection to a new server connection (none: the client is closed)."""
        self._writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:  # the server is down: the client sees its connection closed
            self._writers.discard(client_w)
            client_w.transport.abort()
            return
        self._writers.add(server_w)
        budget: list[int | None] = [None]  # bytes of the current reply still to pass on

        async def upstream() -> None:
            while chunk := await client_r.read(65536):
                if self._amend is not None and self._amend[0] in chunk:
                    fields = self._amend[1]
                    self._amend = None
                    chunk = await _amended(chunk, client_r, fields)
                    self.amended += 1
                if self._hold is not None and self._hold[0] in chunk:
                    budget[0] = self._hold[1]
                    self._hold = None
                    self.held += 1
                server_w.write(chunk)
                await server_w.drain()

        async def downstream() -> None:
            while chunk := await server_r.read(65536):
                left = budget[0]
                if left is not None:
                    chunk = chunk[:left]
                    budget[0] = left - len(chunk)
                if chunk:
                    client_w.write(chunk)
                    await client_w.drain()
                if budget[0] == 0:
                    await asyncio.Event().wait()  # held until cut() (or stop())

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                writer.close()  # after cut() a no-op; else what was written still goes out
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()


async def _amended(start: bytes, reader: asyncio.StreamReader, fields: dict[str, object]) -> bytes:
    """The HTTP request that ``start`` begins, read whole, with ``fields`` in its JSON body."""
    while b"\r\n\r\n" not in start:
        more = await reader.read(65536)
        if not more:
            raise ConnectionError("the request ended before its headers did")
        start += more
    head, _, body = start.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    (length,) = [
        int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
    ]
    if len(body) < length:
        body += await reader.readexactly(length - len(body))
    data = json.loads(body[:length])
    data.update(fields)
    amended = json.dumps(data).encode()
    lines = [
        b"Content-Length: %d" % len(amended)
        if line.lower().startswith(b"content-length:")
        else line
        for line in lines
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + amended + body[length:]
