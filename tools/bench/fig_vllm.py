"""Figure 6: time to the final message with a real vLLM on CPU over the raw completion.

A real vLLM (``tests.e2e.vllm_server.start_vllm_server``: the scripted tiny model on CPU) gets
the same prompt twice at the same moment: from a plain streaming client and through Parley
(ChatService → fake Bot API with its round trip). vLLM batches both, so they see the same
token timing and the machine's noise cancels out. Per run: (final edit's arrival at the
platform − start) / (raw stream's [DONE] − start); the figure is the median. Run once with
Telegram's pacing (a final edit may wait up to one 1 s slot) and once with the terminal's
(0.05 s), so the pacing share is visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any

import httpx

from bots.model import serve
from tests.e2e.vllm_server import RealVllm, start_vllm_server
from tools.bench.bot import Pacing, running_bot
from tools.bench.config import BenchConfig
from tools.bench.env import Env
from tools.bench.procs import pin
from tools.bench.results import Figure, median

MAX_TOKENS = 1024
_BASE = 500_000


def vllm_installed() -> bool:
    """Whether ~/.cache/parley/vllm-venv (or PARLEY_E2E_VLLM_URL) is there to use."""
    return bool(os.environ.get("PARLEY_E2E_VLLM_URL")) or serve.find_vllm_python(None) is not None


async def _raw(http: httpx.AsyncClient, base_url: str, model: str, text: str) -> float:
    """Stream the completion; the monotonic time its [DONE] arrived."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "stream": True,
        "max_tokens": MAX_TOKENS,
        "temperature": 0.6,
        "top_p": 0.95,
    }
    async with http.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.strip() == "data: [DONE]":
                return time.monotonic()
    return float("nan")


async def _pairs(
    env: Env, server: RealVllm, cfg: BenchConfig, interval: float, first: int
) -> dict[str, Any]:
    """``vllm_runs`` simultaneous raw/Parley pairs with one pacing interval."""
    chats = [first + i for i in range(cfg.vllm_runs)]
    await env.configure_platform(rtt=cfg.rtt, rules="telegram", scale=cfg.rule_scale)
    await env.open_chats(chats)
    ratios: list[float] = []
    raw_s: list[float] = []
    after_ms: list[float] = []
    async with (
        running_bot(env, Pacing(chat_interval=interval), llm_base_url=server.base_url) as bench,
        httpx.AsyncClient(timeout=120) as http,
    ):
        model = (await bench.runtime.llm.model_info()).id
        await _raw(http, server.base_url, model, "warm up")  # the first request compiles
        for chat in chats:
            text = f"[chat {chat}] hello"
            start = time.monotonic()
            done, turn = await asyncio.gather(
                _raw(http, server.base_url, model, text), bench.converse(chat, "hello")
            )
            landed = (await env.platform_stats())["last_write"][str(chat)]
            ratios.append((landed - start) / (done - start))
            raw_s.append(done - start)
            after_ms.append((landed - done) * 1000)
            if not turn.answer:
                raise RuntimeError(f"Parley did not answer through vLLM: {turn}")
    return {
        "pacing_interval_s": interval,
        "ratio_median": median(ratios),
        "ratios": ratios,
        "raw_completion_s_median": median(raw_s),
        "final_after_raw_done_ms_median": median(after_ms),
    }


async def run(env: Env, cfg: BenchConfig) -> Figure:
    """Start vLLM, measure with Telegram's and the terminal's pacing, stop vLLM."""
    everywhere = env.cpus.original or None
    pin(0, everywhere)  # vLLM inherits this process's CPUs: give it all
    for pid in (env.redis.process.pid, env.model.process.pid, env.platform.process.pid):
        pin(pid, everywhere)  # vLLM's busy threads would starve helpers kept on one CPU
    server = await asyncio.to_thread(start_vllm_server)
    try:
        telegram = await _pairs(env, server, cfg, cfg.chat_interval, _BASE)
        terminal = await _pairs(env, server, cfg, cfg.chat_interval / 20, _BASE + 1000)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.stop)
    return Figure(
        6,
        "time to final message / raw completion (real vLLM, CPU)",
        telegram["ratio_median"],
        "×",
        1.05,
        "<=",
        details={
            "telegram_pacing": telegram,
            "terminal_pacing": terminal,
            "runs": cfg.vllm_runs,
            "vllm_start_s": server.timings.get("start_s"),
        },
        note=(
            f"with the terminal's 0.05 s pacing: {terminal['ratio_median']:.3f}×; "
            f"raw completion {telegram['raw_completion_s_median']:.2f} s (tiny scripted model)"
        ),
    )


def skipped(reason: str) -> Figure:
    """The figure when vLLM cannot be used."""
    return Figure(
        6,
        "time to final message / raw completion (real vLLM, CPU)",
        None,
        "×",
        1.05,
        "<=",
        note=f"skipped: {reason}",
    )
