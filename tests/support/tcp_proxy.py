"""A TCP proxy on loopback that can lose the reply to a chosen request: a network blip.

Bytes pass through unchanged both ways. ``lose_reply_to(marker)`` arms it: the next client
chunk holding ``marker`` still reaches the server (so the command is applied), but the
server's answer is dropped and both connections are closed, as when a link dies between a
write and its acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib


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
