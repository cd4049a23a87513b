"""Figure 3: CPU microseconds per streamed token in the bot process.

``time.process_time`` of the bot process over a run of ``cpu_streams`` conversations (the
model server, fake Bot API and Redis are other processes), divided by the tokens the model
server streamed, ``tokens_per_chunk`` to an SSE chunk as deploy/ serves them (and once more
with one, vLLM's default). Everything the bot does is in it: per-token parsing, edits
(rendering, Bot API requests, Redis pacing), turn set-up and saving. The details add the
per-token path alone: the same streams read by ``OpenAICompatibleClient`` into a
``ReplyStream`` that never writes, with one, four and ten tokens per SSE chunk.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from core.llm.client import OpenAICompatibleClient
from core.llm.events import ChatMessage, ReasoningDelta, SamplingParams, TextDelta
from core.sink import SinkLimits
from core.stream.reply import ReplyStream
from tests.support.sinks import RecordingSink
from tools.bench.bot import Pacing
from tools.bench.config import BenchConfig
from tools.bench.env import Env
from tools.bench.load import REASONING_TOKENS, Load, run_load
from tools.bench.results import Figure


async def token_path_cpu(
    env: Env, streams: int, answer_tokens: int, interval: float, tokens_per_chunk: int = 1
) -> float:
    """CPU µs per token of reading the stream and appending it to a reply, nothing else."""
    await env.configure_model(
        first_token_delay=0.0,
        token_interval=interval,
        reasoning_tokens=REASONING_TOKENS,
        answer_tokens=answer_tokens,
        tokens_per_chunk=tokens_per_chunk,
    )
    client = OpenAICompatibleClient(f"{env.model.url}/v1", "EMPTY")
    await client.model_info()
    sink = RecordingSink(SinkLimits(max_length=4096))

    async def one(i: int) -> None:
        reply = ReplyStream(sink)  # never started: appends only, as while a write is paced
        messages = [ChatMessage("user", f"[chat {i}] hello")]
        async for event in client.stream(messages, SamplingParams(max_tokens=4096)):
            if isinstance(event, TextDelta):
                reply.add_answer(event.text)
            elif isinstance(event, ReasoningDelta):
                reply.add_reasoning(event.text)

    try:
        cpu = time.process_time()
        await asyncio.gather(*(one(i) for i in range(streams)))
        cpu = time.process_time() - cpu
    finally:
        await client.close()
    tokens = int((await env.model_stats())["tokens"])
    return cpu / tokens * 1e6 if tokens else float("nan")


async def run(env: Env, cfg: BenchConfig) -> Figure:
    """The whole bot's CPU per token, then the per-token path's alone."""
    load = Load(
        conversations=cfg.cpu_streams,
        stream_seconds=cfg.cpu_stream_seconds,
        token_interval=cfg.token_interval,
        ramp_seconds=cfg.level_ramp_seconds,
        pacing=Pacing(chat_interval=cfg.chat_interval, bot_per_second=0),
        rules="per_chat",
        rtt=cfg.rtt,
        rule_scale=cfg.rule_scale,
        tokens_per_chunk=cfg.tokens_per_chunk,
    )
    result = await run_load(env, load)
    per_token = result.bot_cpu_seconds / result.tokens * 1e6 if result.tokens else float("nan")
    writes = result.platform["writes"]
    unbatched = await run_load(env, dataclasses.replace(load, tokens_per_chunk=1))
    per_token_unbatched = (
        unbatched.bot_cpu_seconds / unbatched.tokens * 1e6 if unbatched.tokens else float("nan")
    )
    answer_tokens = max(2, round(cfg.cpu_stream_seconds / 2 / cfg.token_interval))
    path = await token_path_cpu(env, cfg.cpu_streams, answer_tokens, cfg.token_interval)
    by_four = await token_path_cpu(env, cfg.cpu_streams, answer_tokens, cfg.token_interval, 4)
    batched = await token_path_cpu(env, cfg.cpu_streams, answer_tokens, cfg.token_interval, 10)
    return Figure(
        3,
        "bot CPU per streamed token, everything included",
        per_token,
        "µs",
        50.0,  # the goal for the whole bot; the token path alone aims at 15 (details)
        "<=",
        details={
            "conversations": cfg.cpu_streams,
            "tokens": result.tokens,
            "bot_cpu_seconds": result.bot_cpu_seconds,
            "bot_waiting_for_cpu_share": result.bot_wait_seconds / result.wall_seconds,
            "wall_seconds": result.wall_seconds,
            "writes": writes,
            "tokens_per_write": result.tokens / writes if writes else None,
            "outcomes": dict(result.outcomes),
            "token_path_only_us": path,
            "token_path_only_us_4_tokens_per_chunk": by_four,
            "token_path_only_us_10_tokens_per_chunk": batched,
            "token_interval_s": cfg.token_interval,
            "tokens_per_chunk": cfg.tokens_per_chunk,
            "whole_bot_us_1_token_per_chunk": per_token_unbatched,
        },
    )
