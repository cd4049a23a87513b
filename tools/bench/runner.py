"""Runs the selected figures in order, with the helpers up once, and builds the report."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tools.bench import (
    fig_capacity,
    fig_context,
    fig_cpu,
    fig_first_token,
    fig_memory,
    fig_rate_limits,
    fig_slack,
    fig_vllm,
)
from tools.bench.config import BenchConfig
from tools.bench.env import Env, running_env
from tools.bench.procs import CpuPlan, pin, plan_cpus
from tools.bench.results import Figure, load_average, machine

log = logging.getLogger(__name__)

ALL = frozenset({1, 2, 3, 4, 5, 6, 7, 8})
_WITH_ENV = (
    (1, fig_first_token.run),
    (2, fig_capacity.run),
    (3, fig_cpu.run),
    (4, fig_rate_limits.run),
    (7, fig_slack.run),  # before vLLM, whose start-up leaves the machine busy for a while
    (8, fig_memory.run),
)


async def _vllm(env: Env, cfg: BenchConfig, with_vllm: bool) -> Figure:
    """Figure 6, or why it was skipped."""
    if not with_vllm:
        return fig_vllm.skipped("--no-vllm given", cfg)
    if not fig_vllm.vllm_installed():
        return fig_vllm.skipped("vLLM is not installed (`make vllm` installs it)", cfg)
    try:
        return await fig_vllm.run(env, cfg)
    except Exception as exc:  # a vLLM that cannot start must not lose the other figures
        log.exception("the vLLM figure failed")
        return fig_vllm.skipped(f"vLLM failed: {exc}", cfg)


async def run_figures(
    cfg: BenchConfig,
    selected: frozenset[int] = ALL,
    *,
    with_vllm: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[list[Figure], CpuPlan]:
    """Every selected figure; the bot pinned to its own core while the load figures run."""
    cpus = plan_cpus()
    figures: list[Figure] = []
    try:
        pin(0, cpus.bot)
        if 5 in selected:
            say("5. context fitting…")
            figures.append(fig_context.run(cfg))
        if selected & {1, 2, 3, 4, 6, 7, 8}:
            async with running_env(cpus, slack=7 in selected) as env:
                for number, run in _WITH_ENV:
                    if number in selected:
                        say(f"{number}. running…")
                        figures.append(await run(env, cfg))
                if 6 in selected:
                    say("6. real vLLM (starting it takes about a minute)…")
                    figures.append(await _vllm(env, cfg, with_vllm))
    finally:
        pin(0, cpus.original or None)
    return sorted(figures, key=lambda f: f.number), cpus


async def report(
    cfg: BenchConfig,
    selected: frozenset[int] = ALL,
    *,
    with_vllm: bool = True,
    say: Callable[[str], None] = print,
) -> tuple[list[Figure], dict[str, Any]]:
    """Run the figures and wrap them with the machine, load and configuration."""
    started = time.monotonic()
    load_before = load_average()
    figures, cpus = await run_figures(cfg, selected, with_vllm=with_vllm, say=say)
    body = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        "load_average": {"before": load_before, "after": load_average()},
        "cpus": {
            "bot": sorted(cpus.bot or ()),
            "helpers": sorted(cpus.helpers or ()),
            "pinned": cpus.pinned,
        },
        "config": dataclasses.asdict(cfg),
        "figures": [f.to_json() for f in figures],
    }
    return figures, body
