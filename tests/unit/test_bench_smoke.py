"""`make bench` code paths at tiny sizes: every figure comes out well-formed (timings unchecked)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from tests.services import missing_service
from tools.bench import fig_context, micro, plots
from tools.bench.config import smoke
from tools.bench.env import redis_available, running_env
from tools.bench.model_server import ModelServer
from tools.bench.procs import plan_cpus
from tools.bench.results import Figure, percentile, table
from tools.bench.runner import report

TINY = dataclasses.replace(
    smoke(),
    ttft_runs=2,
    levels=(2,),
    level_stream_seconds=0.2,
    cpu_streams=2,
    cpu_stream_seconds=0.2,
    rl_chats=3,
    rl_groups=1,
    rl_stream_seconds=0.2,
)


def well_formed(figure: Figure) -> None:
    """A number with its target, a verdict, and JSON-ready details."""
    assert figure.name
    assert figure.unit
    assert figure.direction in ("<=", ">=")
    if figure.value is None:
        assert figure.met is None
        assert figure.note
    else:
        assert math.isfinite(figure.value)
        assert figure.met in (True, False)
    json.dumps(figure.to_json())


def test_percentiles_interpolate() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))


def test_the_model_server_groups_tokens_like_stream_interval() -> None:
    server = ModelServer()
    server.configure({"reasoning_tokens": 4, "answer_tokens": 6, "tokens_per_chunk": 3})
    last = [index for index, _ in server.plan()]
    assert last == [2, 3, 6, 9]  # reasoning 3+1, then "\n\n" and the answer in threes


def test_context_figure() -> None:
    figure = fig_context.run(TINY)
    well_formed(figure)
    assert figure.number == 5
    assert figure.details["kept_messages"] > 0


async def test_every_figure_runs_at_tiny_sizes(tmp_path: Path) -> None:
    if not redis_available():
        missing_service("redis-server")
    figures, body = await report(TINY, with_vllm=False, say=lambda _: None)
    assert [f.number for f in figures] == [1, 2, 3, 4, 5, 6]
    for figure in figures:
        well_formed(figure)
    by_number = {f.number: f for f in figures}
    assert by_number[1].details["answered"] == TINY.ttft_runs
    assert by_number[2].details["levels"][0]["outcomes"] == {"answered": 2}
    assert by_number[3].details["tokens"] > 0
    assert by_number[4].details["writes"] > 0
    assert by_number[6].value is None
    assert "--no-vllm" in by_number[6].note
    assert json.loads(json.dumps(body))["figures"][0]["number"] == 1
    assert all(f"{n}  " in table(figures) for n in range(1, 7))
    drawn = plots.draw(json.loads(json.dumps(body)), tmp_path)
    assert sorted(p.name for p in drawn) == ["cpu-per-token.png", "lag-vs-streams.png"]
    assert all(p.stat().st_size > 0 for p in drawn)


@pytest.mark.parametrize("direction", ["<=", ">="])
def test_verdicts(direction: str) -> None:
    figure = Figure(9, "x", 1.0, "ms", 2.0, direction)  # type: ignore[arg-type]
    assert figure.met is (direction == "<=")


async def test_every_micro_stage_runs_at_tiny_sizes() -> None:
    if not redis_available():
        missing_service("redis-server")
    async with running_env(plan_cpus()) as env:
        lines = [
            await micro.token_path(env, 2, 3, 1),
            await micro.edits(env, 2, 2, "aiohttp"),
            await micro.edits(env, 2, 2, "httpx"),
            await micro.slack_edits(env, 2, 2),
            await micro.memory(env, 2, answer_tokens=4),
        ]
    assert [line.split(":")[0] for line in lines] == [
        "token path",
        "edits via aiohttp",
        "edits via httpx",
        "slack edits",
        "memory",
    ]
