"""Figure 6: the final message after the bot's own model stream ended, with a real vLLM on CPU.

A real vLLM (``tests.e2e.vllm_server.start_vllm_server``: the scripted tiny model on CPU) gets
the same prompt twice at the same moment: from a plain streaming client and through Parley
(ChatService → fake Bot API with its round trip). Parley reaches vLLM through
``tools.bench.stream_tap``, a loopback proxy that notes when it forwarded Parley's own
``data: [DONE]``. Per run: the final edit's arrival at the platform − Parley's own [DONE] (ms);
the figure is the median with Telegram's pacing, against one pacing slot + 50 ms. The two
streams sample separately (temperature 0.6), so their lengths differ; the older ratio (final
edit − start) / (raw stream's [DONE] − start) is kept in the details. Run once with Telegram's
pacing (a final edit may wait up to one 1 s slot) and once with the terminal's (0.05 s), so the
pacing share is visible. All stamps are time.monotonic (CLOCK_MONOTONIC, one host).
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
from tools.bench.procs import Helper, pin, spawn
from tools.bench.results import Figure, median
from tools.bench.stream_tap import stream_end

MAX_TOKENS = 1024
_BASE = 500_000
SLACK_MS = 50.0  # the allowance on top of one pacing slot
RATIO_TARGET = 1.05  # the older figure: time to final message / raw completion
NAME = "final message after own model stream ended (real vLLM, CPU)"


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


async def _own_end(env: Env, tap: Helper, chat: int) -> float:
    """When the tap forwarded Parley's own [DONE] for ``chat`` (waits briefly for its stamp)."""
    records: list[dict[str, Any]] = []
    for _ in range(200):
        response = await env.http.get(f"{tap.url}/tap/records", params={"tag": str(chat)})
        response.raise_for_status()
        records = response.json()
        end = stream_end(records)
        if end is not None:
            return end
        await asyncio.sleep(0.01)  # the tap stamps right after forwarding: only a race
    raise RuntimeError(f"the stream tap saw no finished completion for chat {chat}: {records}")


async def _pairs(
    env: Env, server: RealVllm, tap: Helper, cfg: BenchConfig, interval: float, first: int
) -> dict[str, Any]:
    """``vllm_runs`` simultaneous raw/Parley pairs with one pacing interval."""
    chats = [first + i for i in range(cfg.vllm_runs)]
    await env.configure_platform(rtt=cfg.rtt, rules="telegram", scale=cfg.rule_scale)
    await env.open_chats(chats)
    ratios: list[float] = []
    raw_s: list[float] = []
    own_s: list[float] = []
    after_ms: list[float] = []
    after_own_ms: list[float] = []
    async with (
        running_bot(env, Pacing(chat_interval=interval), llm_base_url=f"{tap.url}/v1") as bench,
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
            if not turn.answer:
                raise RuntimeError(f"Parley did not answer through vLLM: {turn}")
            landed = (await env.platform_stats())["last_write"][str(chat)]
            own_done = await _own_end(env, tap, chat)
            ratios.append((landed - start) / (done - start))
            raw_s.append(done - start)
            own_s.append(own_done - start)
            after_ms.append((landed - done) * 1000)
            after_own_ms.append((landed - own_done) * 1000)
    return {
        "pacing_interval_s": interval,
        "target_ms": interval * 1000 + SLACK_MS,
        "final_after_own_done_ms_median": median(after_own_ms),
        "final_after_own_done_ms": after_own_ms,
        "ratio_median": median(ratios),
        "ratios": ratios,
        "raw_completion_s_median": median(raw_s),
        "own_completion_s_median": median(own_s),
        "final_after_raw_done_ms_median": median(after_ms),
    }


async def run(env: Env, cfg: BenchConfig) -> Figure:
    """Start vLLM and the tap, measure with Telegram's and the terminal's pacing, stop both."""
    everywhere = env.cpus.original or None
    pin(0, everywhere)  # vLLM inherits this process's CPUs: give it all
    for pid in (env.redis.process.pid, env.model.process.pid, env.platform.process.pid):
        pin(pid, everywhere)  # vLLM's busy threads would starve helpers kept on one CPU
    server = await asyncio.to_thread(start_vllm_server)
    tap: Helper | None = None
    try:
        # Its own process: Parley's event loop delays in reading [DONE] count against Parley.
        tap = await asyncio.to_thread(spawn, "tap", "tools.bench.stream_tap", everywhere)
        response = await env.http.post(f"{tap.url}/tap/config", json={"upstream": server.root_url})
        response.raise_for_status()
        telegram = await _pairs(env, server, tap, cfg, cfg.chat_interval, _BASE)
        terminal = await _pairs(env, server, tap, cfg, cfg.chat_interval / 20, _BASE + 1000)
    finally:
        if tap is not None:
            tap.stop()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(server.stop)
    return Figure(
        6,
        NAME,
        telegram["final_after_own_done_ms_median"],
        "ms",
        telegram["target_ms"],
        "<=",
        details={
            "telegram_pacing": telegram,
            "terminal_pacing": terminal,
            "ratio_target": RATIO_TARGET,
            "runs": cfg.vllm_runs,
            "vllm_start_s": server.timings.get("start_s"),
        },
        note=(
            f"target: one {cfg.chat_interval:g} s pacing slot + {SLACK_MS:g} ms; with the "
            f"terminal's {terminal['pacing_interval_s']:g} s pacing: "
            f"{terminal['final_after_own_done_ms_median']:.0f} ms; time to final / raw "
            f"completion {telegram['ratio_median']:.3f}× (terminal "
            f"{terminal['ratio_median']:.3f}×, target <= {RATIO_TARGET:g}×); raw completion "
            f"{telegram['raw_completion_s_median']:.2f} s (tiny scripted model)"
        ),
    )


def skipped(reason: str, cfg: BenchConfig | None = None) -> Figure:
    """The figure when vLLM cannot be used."""
    interval = (cfg or BenchConfig()).chat_interval
    return Figure(6, NAME, None, "ms", interval * 1000 + SLACK_MS, "<=", note=f"skipped: {reason}")
