"""`python -m tools.bench.micro`: one stage of the bot alone, small enough to run under callgrind.

Wall-clock and even CPU-time figures move with whatever else the machine runs; instruction
counts do not. Two runs that differ only in size, under ``valgrind --tool=callgrind``, give the
instructions per token (or per edit) as the difference of their totals divided by the
difference of their sizes: start-up cancels out. docs/PERFORMANCE.md shows how.

    token-path STREAMS TOKENS TOKENS_PER_CHUNK   the model stream read into a ReplyStream
    edits CHATS EDITS {aiohttp,httpx}            Bot API edits through python-telegram-bot
    slack-edits CHANNELS EDITS                   chat.update through slack_sdk's AsyncWebClient
    memory STREAMS                               resident memory per active stream, and after
    render SIZE STEP                             rendering a growing answer, whole or from its
                                                 kept part (no services)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot
from telegram.request import BaseRequest, HTTPXRequest

from bots import event_loop
from bots.telegram.request import AiohttpRequest
from tools.bench.bot import TOKEN
from tools.bench.env import Env, running_env
from tools.bench.fig_cpu import token_path_cpu
from tools.bench.fig_memory import measure
from tools.bench.procs import plan_cpus, spawn
from tools.bench.render_cost import render_cost


async def token_path(env: Env, streams: int, tokens: int, per_chunk: int) -> str:
    """CPU µs per token of the stream path, and how many tokens the server sent."""
    cpu = await token_path_cpu(env, streams, tokens, 0.05, per_chunk)
    sent = (await env.model_stats())["tokens"]
    return f"token path: {cpu:.1f} µs of CPU per token, {sent} tokens"


async def edits(env: Env, chats: int, count: int, request: str) -> str:
    """CPU µs per editMessageText through PTB on the given request class (no pacing, no RTT)."""
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    await env.configure_platform(rtt=0.0, rules="per_chat", scale=1e-6)  # no flood limits
    ids = list(range(1000, 1000 + chats))
    await env.open_chats(ids)
    kind = HTTPXRequest if request == "httpx" else AiohttpRequest
    made: BaseRequest = kind(
        connection_pool_size=512,
        connect_timeout=10.0,
        read_timeout=10.0,
        write_timeout=10.0,
        pool_timeout=10.0,
    )
    async with Bot(TOKEN, base_url=f"{env.platform.url}/bot", request=made) as bot:
        sent = await asyncio.gather(*(bot.send_message(chat, "…") for chat in ids))

        async def edit(chat: int, message: int) -> None:
            for i in range(count):
                await bot.edit_message_text(f"answer {i} " * 40, chat_id=chat, message_id=message)

        cpu = time.process_time()
        await asyncio.gather(*(edit(m.chat_id, m.message_id) for m in sent))
        cpu = time.process_time() - cpu
    return f"edits via {request}: {cpu / (chats * count) * 1e6:.0f} µs of CPU per edit"


async def slack_edits(env: Env, channels: int, count: int) -> str:
    """CPU µs per chat.update through slack_sdk (aiohttp) against the fake Web API, no pacing."""
    server = spawn("slack", "tools.bench.slack_server", env.cpus.helpers)
    session = aiohttp.ClientSession()  # one long-lived session, as bots/slack/app.py passes
    try:
        client = AsyncWebClient(
            token="xoxb-fake-bot-token",  # noqa: S106 (the fake's)
            base_url=server.url,
            session=session,
            retry_handlers=[],
        )
        names = [f"C{i:08d}" for i in range(channels)]
        posted = await asyncio.gather(
            *(client.chat_postMessage(channel=c, text="…") for c in names)
        )

        async def edit(channel: str, ts: str) -> None:
            for i in range(count):
                await client.chat_update(channel=channel, ts=ts, text=f"answer {i} " * 40)

        cpu = time.process_time()
        await asyncio.gather(*(edit(c, str(p["ts"])) for c, p in zip(names, posted, strict=True)))
        cpu = time.process_time() - cpu
    finally:
        await session.close()
        server.stop()
    return f"slack edits: {cpu / (channels * count) * 1e6:.0f} µs of CPU per chat.update"


async def memory(env: Env, streams: int, stream_seconds: float = 6.0) -> str:
    """Figure 8's measurement alone (tools/bench/fig_memory.py)."""
    active, kept = await measure(env, streams, stream_seconds)
    return (
        f"memory: {active:.1f} KB per active stream ({streams} at once); the next {streams} "
        f"conversations added {kept:.1f} KB each"
    )


def main(argv: list[str] | None = None) -> int:
    """Run one stage with the benchmark's helpers, print one line."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench.micro", description=__doc__)
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio, not uvloop")
    sub = parser.add_subparsers(dest="stage", required=True)
    path = sub.add_parser("token-path")
    for name in ("streams", "tokens", "per_chunk"):
        path.add_argument(name, type=int)
    edit = sub.add_parser("edits")
    edit.add_argument("chats", type=int)
    edit.add_argument("count", type=int)
    edit.add_argument("request", choices=("aiohttp", "httpx"))
    slack = sub.add_parser("slack-edits")
    slack.add_argument("chats", type=int)
    slack.add_argument("count", type=int)
    mem = sub.add_parser("memory")
    mem.add_argument("streams", type=int)
    rendering = sub.add_parser("render")
    rendering.add_argument("size", type=int)
    rendering.add_argument("step", type=int)
    args = parser.parse_args(argv)
    if args.stage == "render":
        print(render_cost(args.size, args.step), flush=True)
        return 0

    async def run() -> str:
        async with running_env(plan_cpus()) as env:
            if args.stage == "token-path":
                return await token_path(env, args.streams, args.tokens, args.per_chunk)
            if args.stage == "slack-edits":
                return await slack_edits(env, args.chats, args.count)
            if args.stage == "memory":
                return await memory(env, args.streams)
            return await edits(env, args.chats, args.count, args.request)

    runner = asyncio.run if args.asyncio else event_loop.runner()
    print(runner(run()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
