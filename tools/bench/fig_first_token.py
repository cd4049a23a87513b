"""Figure 1: the bot's overhead to the first visible answer token over the raw stream.

The model server stamps the moment it writes each stream's first visible answer token. A plain
client (httpx reading SSE lines, orjson) notes when that token reaches it; Parley's path notes
when the edit showing it reaches the fake Bot API (over loopback, answered after the round
trip). Overhead = p50(Parley's delay after the stamp) − p50(the plain client's).
The first token comes after ``ttft_first_token_delay``, later than the status message's next
pacing slot, so pacing never holds the answer back and only the bot's own work is measured.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson

from core.results import Outcome
from tools.bench.bot import Pacing, running_bot
from tools.bench.config import BenchConfig
from tools.bench.env import Env
from tools.bench.model_server import MODEL
from tools.bench.procs import run_queue_wait
from tools.bench.results import Figure, median, percentile

_BASE = 100_000


async def _plain_stream(http: httpx.AsyncClient, url: str, tag: int) -> float:
    """Stream one completion; the monotonic time the first visible answer token arrived."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"[chat {tag}] hello"}],
        "stream": True,
        "max_tokens": 4096,
    }
    seen = float("nan")
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            choices = orjson.loads(line[5:]).get("choices") or ()
            content = choices[0].get("delta", {}).get("content") if choices else None
            if content and content.strip() and seen != seen:
                seen = time.monotonic()
    return seen


async def run(env: Env, cfg: BenchConfig) -> Figure:
    """Measure both paths on the same model server settings."""
    await env.configure_model(
        first_token_delay=cfg.ttft_first_token_delay,
        token_interval=min(0.02, cfg.token_interval),
        reasoning_tokens=10,
        answer_tokens=20,
    )
    tags = [_BASE + i for i in range(cfg.ttft_runs)]

    async def plain(i: int, http: httpx.AsyncClient) -> float:
        await asyncio.sleep(i * cfg.ttft_stagger)
        return await _plain_stream(http, env.model.url, tags[i])

    async with httpx.AsyncClient(timeout=30) as http:
        arrived = await asyncio.gather(*(plain(i, http) for i in range(len(tags))))
    sent = (await env.model_stats())["first_answer"]
    plain_delays = [arrived[i] - sent[str(tag)] for i, tag in enumerate(tags) if str(tag) in sent]

    await env.configure_model(
        first_token_delay=cfg.ttft_first_token_delay,
        token_interval=min(0.02, cfg.token_interval),
        reasoning_tokens=10,
        answer_tokens=20,
    )
    await env.configure_platform(rtt=cfg.rtt, rules="telegram", scale=cfg.rule_scale)
    await env.open_chats(tags)
    async with running_bot(env, Pacing(chat_interval=cfg.chat_interval)) as bench:

        async def parley(i: int) -> Outcome:
            await asyncio.sleep(i * cfg.ttft_stagger)
            return (await bench.converse(tags[i], "hello")).outcome

        wait, wall = run_queue_wait(), time.monotonic()
        outcomes = await asyncio.gather(*(parley(i) for i in range(len(tags))))
        wait, wall = run_queue_wait() - wait, time.monotonic() - wall
    sent = (await env.model_stats())["first_answer"]
    shown = (await env.platform_stats())["first_answer"]
    bot_delays = [shown[str(t)] - sent[str(t)] for t in tags if str(t) in sent and str(t) in shown]

    overhead = median(bot_delays) - median(plain_delays)
    return Figure(
        1,
        "overhead to first visible answer token (p50)",
        overhead * 1000,
        "ms",
        1.0,
        "<=",
        details={
            "conversations": len(tags),
            "answered": sum(o is Outcome.ANSWERED for o in outcomes),
            "parley_after_server_ms": {
                "p50": median(bot_delays) * 1000,
                "p90": percentile(bot_delays, 90) * 1000,
            },
            "plain_client_after_server_ms": {
                "p50": median(plain_delays) * 1000,
                "p90": percentile(plain_delays, 90) * 1000,
            },
            "first_token_delay_s": cfg.ttft_first_token_delay,
            "bot_waiting_for_cpu_share": wait / wall,
            "sink": f"fake Telegram Bot API in another process, {cfg.rtt * 1000:.0f} ms RTT",
        },
    )
