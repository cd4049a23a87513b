"""Figure 8: the bot's resident memory per active stream, and what finished conversations keep.

``streams`` conversations stream at once (answers of 120 tokens, 4 to a chunk, one edit a
second); the bot's resident memory (``/proc/self/statm``, sampled every 0.1 s) at its peak over
what it held before, per stream, is the figure. A second wave of as many new conversations in new
chats follows: CPython keeps freed memory for reuse, so what the second wave adds is what
finished conversations kept (their history is in Redis, not in the process): the goal is 0.
"""

from __future__ import annotations

import asyncio
import gc
import resource
from pathlib import Path

from tools.bench.bot import Pacing, running_bot
from tools.bench.config import BenchConfig
from tools.bench.env import Env
from tools.bench.load import configure_stream
from tools.bench.results import Figure

TARGET_KB = 50.0


def resident_bytes() -> int:
    """This process's resident memory in bytes, now."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


async def measure(env: Env, streams: int, stream_seconds: float = 6.0) -> tuple[float, float]:
    """KB of resident memory per active stream, and per finished conversation."""
    await configure_stream(
        env,
        stream_seconds=stream_seconds,
        token_interval=0.05,
        first_token_delay=0.2,
        tokens_per_chunk=4,
    )
    await env.configure_platform(rtt=0.05, rules="per_chat")
    waves = [list(range(1000, 1000 + streams)), list(range(1000 + streams, 1000 + 2 * streams))]
    await env.open_chats([999, *waves[0], *waves[1]])
    peaks: list[int] = []
    async with running_bot(env, Pacing(bot_per_second=0)) as bench:
        await bench.converse(999, "warm up")
        gc.collect()
        before = resident_bytes()
        for ids in waves:
            peak = resident_bytes()
            turns = asyncio.gather(*(bench.converse(chat, "hello") for chat in ids))
            while not turns.done():
                peak = max(peak, resident_bytes())
                await asyncio.sleep(0.1)
            await turns
            gc.collect()
            peaks.append(peak)
    return (peaks[0] - before) / streams / 1024, (peaks[1] - peaks[0]) / streams / 1024


async def run(env: Env, cfg: BenchConfig) -> Figure:
    """Both waves; the figure is the active one, the kept memory is in the details."""
    active, kept = await measure(env, cfg.memory_streams, cfg.memory_stream_seconds)
    return Figure(
        8,
        "bot memory per active stream",
        active,
        "KB",
        TARGET_KB,
        "<=",
        details={
            "streams": cfg.memory_streams,
            "kb_per_active_stream": active,
            "kb_kept_per_finished_conversation": kept,
            "kept_target_kb": 0.0,
        },
        note=(
            f"{cfg.memory_streams} streaming at once; the next {cfg.memory_streams} "
            f"conversations kept {kept:.1f} KB each (goal 0: idle ones live in Redis)"
        ),
    )
