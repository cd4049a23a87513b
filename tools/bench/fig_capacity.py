"""Figure 2: concurrent streaming conversations one bot process sustains on one core.

Each level starts N conversations (arrivals spread at random over the ramp) whose answers
stream for ``level_stream_seconds`` at ``token_interval``. The model server, the fake Bot API
and Redis run in other processes on the other CPUs; the bot is pinned to its own core. Edit
lag = when a write reached the platform − the pacer slot it was allowed at; counted for slots
after the ramp and a warm-up (steady streaming, final edits included). A level passes if lag
p99 ≤ ``lag_target``, every turn was answered and the model server streamed every token.
Telegram's bot-wide 30 writes/s is lifted here (the bot's budget off, the fake's limit raised:
what paid broadcasts allow), so each chat may write once per second.
"""

from __future__ import annotations

from typing import Any

from tools.bench.bot import Pacing
from tools.bench.config import BenchConfig
from tools.bench.env import Env
from tools.bench.load import REASONING_TOKENS, Load, LoadRun, run_load
from tools.bench.results import Figure, percentile


def level_summary(run: LoadRun, load: Load, cfg: BenchConfig) -> dict[str, Any]:
    """Lag percentiles over the steady part, throughput and CPU use of one level."""
    since = run.started + load.ramp_seconds + cfg.level_warmup_seconds
    stats = run.platform
    lags = [lag for lag, at in zip(stats["lags"], stats["lag_at"], strict=True) if at >= since]
    answer_tokens = max(2, round(load.stream_seconds / load.token_interval))
    stream_seconds = (REASONING_TOKENS + answer_tokens) * load.token_interval
    expected = load.conversations * (REASONING_TOKENS + answer_tokens)
    p99 = percentile(lags, 99)
    passed = (
        bool(lags)
        and p99 <= cfg.lag_target
        and run.answered == load.conversations
        and run.tokens >= expected
    )
    return {
        "conversations": load.conversations,
        "passed": passed,
        "lag_ms": {
            "p50": percentile(lags, 50) * 1000,
            "p90": percentile(lags, 90) * 1000,
            "p99": p99 * 1000,
            "max": max(lags, default=float("nan")) * 1000,
        },
        "lag_samples": len(lags),
        "outcomes": dict(run.outcomes),
        "tokens_streamed": run.tokens,
        "tokens_expected": expected,
        "tokens_per_second": run.tokens / run.wall_seconds,
        "writes": stats["writes"],
        "writes_per_second": stats["writes"] / run.wall_seconds,
        "platform_errors": stats["errors"] + stats["flood_429"],
        "wall_seconds": run.wall_seconds,
        "bot_cpu_utilisation": run.bot_cpu_seconds / run.wall_seconds,
        "bot_waiting_for_cpu_share": run.bot_wait_seconds / run.wall_seconds,
        # If the bot had a whole core and nothing else limited it: 1 / CPU per stream-second.
        "projected_streams_per_core": load.conversations * stream_seconds / run.bot_cpu_seconds,
        "helpers_cpu_utilisation": run.helper_cpu_seconds / run.wall_seconds,
    }


async def run(env: Env, cfg: BenchConfig) -> Figure:
    """Ramp up until a level misses the lag target; report the highest that met it."""
    levels: list[dict[str, Any]] = []
    best = 0
    for n in cfg.levels:
        load = Load(
            conversations=n,
            stream_seconds=cfg.level_stream_seconds,
            token_interval=cfg.token_interval,
            ramp_seconds=cfg.level_ramp_seconds,
            pacing=Pacing(chat_interval=cfg.chat_interval, bot_per_second=0),
            rules="per_chat",
            rtt=cfg.rtt,
            rule_scale=cfg.rule_scale,
            tokens_per_chunk=cfg.tokens_per_chunk,
        )
        summary = level_summary(await run_load(env, load), load, cfg)
        levels.append(summary)
        if not summary["passed"]:
            break
        best = n
    note = "" if env.cpus.pinned else "bot not pinned: fewer than two CPUs available"
    return Figure(
        2,
        "concurrent streams with edit lag p99 <= 100 ms",
        best,
        "streams",
        1000,
        ">=",
        details={
            "levels": levels,
            "token_interval_s": cfg.token_interval,
            "pacing_interval_s": cfg.chat_interval,
            "rtt_s": cfg.rtt,
            "bot_cpus": sorted(env.cpus.bot or ()),
            "helper_cpus": sorted(env.cpus.helpers or ()),
        },
        note=note,
    )
