"""Server-sent events read at the byte level, so only CR and LF end a line."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator

# The SSE line terminators, and only those: str.splitlines() (behind httpx's aiter_lines) also
# splits at U+0085, U+2028 and U+2029, which JSON leaves unescaped inside strings.
_EOL = re.compile(rb"\r\n|\r|\n")


async def data_payloads(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield the payload of every ``data:`` line, whatever the chunking of the byte stream.

    Every payload vLLM sends fits one line, so multi-line events are not joined; a CRLF split
    across two chunks reads as an extra blank line, which carries no data and is skipped.
    """
    pending = b""
    async for chunk in chunks:
        if pending:
            chunk = pending + chunk
        lines = _EOL.split(chunk) if b"\r" in chunk else chunk.split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                yield line[5:].strip()
    if pending.startswith(b"data:"):
        yield pending[5:].strip()
