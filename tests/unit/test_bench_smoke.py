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
    assert [f.number for f in figures] == [1, 2, 3, 4, 5, 6, 7, 8]
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
            await micro.memory(env, 2, stream_seconds=0.2),
        ]
    assert [line.split(":")[0] for line in lines] == [
        "token path",
        "edits via aiohttp",
        "edits via httpx",
        "slack edits",
        "memory",
    ]


async def test_the_stream_tap_forwards_streams_unchanged_and_notes_their_done() -> None:
    """Figure 6's proxy: same bytes as direct, passed on while streaming, [DONE] found by chat."""
    import time

    import aiohttp

    from tools.bench.procs import spawn
    from tools.bench.stream_tap import StreamTap, stream_end

    async def completion(http: aiohttp.ClientSession, base: str, chat: int) -> tuple[bytes, float]:
        """A streamed completion's raw body and when its first piece arrived (monotonic)."""
        body = {"messages": [{"role": "user", "content": f"[chat {chat}] hi"}], "stream": True}
        pieces: list[bytes] = []
        first = 0.0
        async with http.post(f"{base}/v1/chat/completions", json=body) as response:
            assert response.status == 200
            async for piece in response.content.iter_any():
                if not pieces:
                    first = time.monotonic()
                pieces.append(piece)
        return b"".join(pieces), first

    model = spawn("model", "tools.bench.model_server", None)
    tap = StreamTap(model.url)
    try:
        url = await tap.start()
        async with aiohttp.ClientSession(auto_decompress=False) as http:
            settings = {"token_interval": 0.01, "reasoning_tokens": 4, "answer_tokens": 20}
            async with http.post(f"{model.url}/bench/config", json=settings) as response:
                assert response.status == 200
            direct, _ = await completion(http, model.url, 7)
            tapped, first_piece = await completion(http, url, 8)
            body = {"messages": [{"role": "user", "content": "[chat 9] hi"}], "stream": True}
            async with http.post(f"{url}/v1/chat/completions", json=body) as response:
                seen = b""
                async for piece in response.content.iter_any():
                    seen += piece
                    if b"data: [DONE]" in seen:
                        break  # and hang up before the body's end, as Parley's client may
                response.close()
            async with http.get(f"{url}/v1/models") as response:
                assert response.status == 200
                assert (await response.json())["data"][0]["id"]
            async with http.get(f"{model.url}/bench/stats") as response:
                model_done = (await response.json())["done"]["8"]
    finally:
        await tap.stop()
        model.stop()
    assert tapped == direct  # byte-identical (the fake's chunk heads are fixed per process)
    assert tapped.endswith(b"data: [DONE]\n\n")
    assert first_piece < model_done  # passed on before the model had sent its last chunk
    assert stream_end(tap.for_tag("7")) is None  # went direct, not through the tap
    records = tap.for_tag("8")
    assert [r["path"] for r in records] == ["/v1/chat/completions"]
    record = records[0]
    assert (record["status"], record["bytes"], record["error"]) == (200, len(tapped), "")
    assert record["chunks"] > 1
    assert record["first_chunk"] < record["done"] <= record["ended"]
    assert stream_end(records) == record["done"]
    assert [r["path"] for r in tap.for_tag("")] == ["/v1/models"]
    assert stream_end(tap.for_tag("9")) is not None  # found even if the hang-up broke the tail


async def test_the_slack_figure_streams_through_the_fake_slack() -> None:
    from tools.bench import fig_slack

    if not redis_available():
        missing_service("redis-server")
    async with running_env(plan_cpus(), slack=True) as env:
        figure = await fig_slack.run(env, TINY)
    well_formed(figure)
    assert figure.number == 7
    assert figure.target == 50.0
    details = figure.details
    assert details["outcomes"] == {"answered": TINY.cpu_streams}
    assert details["stream_mode"] == "update"
    assert details["chat_postMessage_calls"] == TINY.cpu_streams  # one placeholder per reply
    assert details["chat_update_calls"] > 0
    assert details["calls"]["chat.update"] == details["chat_update_calls"]
    assert details["ratelimited_429"] == 0
    assert details["tokens"] > 0


def test_the_render_stage_measures_both_platforms_whole_and_growing() -> None:
    from tools.bench.render_cost import model_answer, render_cost

    assert len(model_answer(500)) == 500
    line = render_cost(400, 60, repeats=1)
    for name in ("telegram whole", "telegram growing", "slack whole", "slack growing"):
        assert f"{name} " in line, line
