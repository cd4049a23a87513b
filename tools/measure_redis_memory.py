"""Measure Redis memory per 1,000 users, written through Parley's own history store.

Starts a private ``redis-server`` on a free loopback port (no persistence, so only the dataset
is measured), fills it through :class:`core.store.redis_store.RedisConversationStore` — the
same RPUSH + LTRIM + EXPIRE transaction and the same compact JSON entries the bots write — with
synthetic users, and reports ``INFO memory`` ``used_memory`` per 1,000 users for each
conversation length; then the cost of the Telegram update de-duplication keys, written through
:class:`bots.telegram.dedup.UpdateDeduplicator`. deploy/README.md ("Sizing") quotes its output.

    .venv/bin/python tools/measure_redis_memory.py
    .venv/bin/python tools/measure_redis_memory.py --users 2000 --turns 10 100 --json out.json

Synthetic users: 70 % Telegram private chats, 30 % Slack threads (longer keys). Message
lengths are log-normal around the medians given (defaults: 150 characters per user message,
1,200 per answer — R1's reasoning is never stored, only the answer), cut at 4,000 and
12,000 characters; about 1 in 20 words is non-ASCII, as in multilingual chats. Token counts
are estimated (characters / 4): only their digit count matters here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import redis.asyncio as aioredis

from bots.telegram.dedup import UpdateDeduplicator
from core.conversation import ConversationKey, Role, StoredMessage, Turn
from core.marks import OnceMarks
from core.store.codec import encode
from core.store.keys import KeySpace
from core.store.redis_store import RedisConversationStore

DEFAULT_TURNS = (5, 25, 100, 150)
DEFAULT_UPDATES = 100_000


def _words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words (a string is easier to read here than a list literal)."""
    return tuple(text.split())


_ASCII_WORDS = _words(
    "the a to of and in is it you that for on with as be this are or not can what how why "
    "model answer question think reason because number time people code python function data "
    "error value list string file server redis message user bot please thanks explain example "
    "first second then also more less very about which would should could there their when "
    "where here make use like just only some any each other into than them these those"
)
_OTHER_WORDS = _words("привет спасибо вопрос ответ 你好 谢谢 问题 größe café naïve ☕ 🎉 👍 ok")


@dataclass(frozen=True)
class Scenario:
    """One fill: this many users, each with one conversation of this many turns."""

    users: int
    turns: int
    max_messages: int = 200
    ttl_seconds: int = 30 * 24 * 3600
    user_chars: int = 150
    answer_chars: int = 1200
    seed: int = 7


@dataclass(frozen=True)
class Result:
    """What one scenario cost in Redis (sample_length: LLEN of one conversation, read back)."""

    users: int
    turns: int
    messages_per_user: int
    payload_bytes: int
    used_memory_bytes: int
    used_memory_dataset_bytes: int
    encoding: str
    sample_length: int
    seconds: float

    @property
    def per_1000_users_mib(self) -> float:
        """used_memory per 1,000 users, MiB."""
        return self.used_memory_bytes / self.users * 1000 / 2**20

    @property
    def overhead_per_message(self) -> float:
        """Bytes Redis spends per stored message beyond its JSON (keys, TTL, list framing)."""
        messages = self.users * self.messages_per_user
        return (self.used_memory_bytes - self.payload_bytes) / messages if messages else 0.0


class TextSource:
    """Realistic-looking text of a requested length, cut from one pre-built random corpus."""

    def __init__(self, rng: random.Random, size: int = 1 << 21) -> None:
        words = [
            rng.choice(_OTHER_WORDS) if rng.random() < 0.05 else rng.choice(_ASCII_WORDS)
            for _ in range(size // 5)
        ]
        self._corpus = " ".join(words)
        self._rng = rng

    def text(self, median: int, cap: int) -> str:
        """Log-normal length (sigma 0.8) around ``median``, at least 2 characters."""
        length = int(min(cap, max(2, self._rng.lognormvariate(math.log(median), 0.8))))
        start = self._rng.randrange(0, len(self._corpus) - length - 1)
        return self._corpus[start : start + length].strip() or "ok"


def conversation_key(index: int) -> ConversationKey:
    """Telegram private chats (chat = user id) and Slack threads, 7:3."""
    if index % 10 < 7:
        user = str(100_000_000 + index * 7919)
        return ConversationKey(platform="telegram", chat=user, user=user)
    return ConversationKey(
        platform="slack",
        chat=f"C{index:010d}",
        user=f"U{index:010d}",
        thread=f"{1_764_500_000 + index}.{index % 1_000_000:06d}",
    )


def make_turn(source: TextSource, scenario: Scenario, at: float) -> Turn:
    """A user message and its answer, as ChatService stores them."""
    question = source.text(scenario.user_chars, 4000)
    answer = source.text(scenario.answer_chars, 12000)
    return Turn(
        StoredMessage(Role.USER, question, max(1, len(question) // 4), at),
        StoredMessage(Role.ASSISTANT, answer, max(1, len(answer) // 4), at + 9.5),
    )


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server(binary: str | None = None) -> Iterator[str]:
    """A throwaway redis-server without persistence; yields its URL, stops it afterwards."""
    path = binary or shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(path).exists():
        raise SystemExit("redis-server not found: apt-get install redis-server (or --redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="parley-redis-mem-") as directory:
        process = subprocess.Popen(
            [path, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory, "--logfile", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                if process.poll() is not None:
                    raise RuntimeError("redis-server exited at start")
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.2),
                ):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start within 10 s")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


async def _memory(client: aioredis.Redis) -> tuple[int, int]:
    """(used_memory, used_memory_dataset) from INFO memory."""
    info = await client.info("memory")
    return int(info["used_memory"]), int(info.get("used_memory_dataset", 0))


async def _settled_memory(client: aioredis.Redis) -> tuple[int, int]:
    """Memory with one client connected: the fill's parallel connections (each with its own
    query and reply buffers, counted in used_memory) are closed first, so only data counts."""
    await client.connection_pool.disconnect()
    with contextlib.suppress(aioredis.ResponseError):  # MEMORY PURGE exists with jemalloc only
        await client.memory_purge()
    for _ in range(50):  # the server frees a closed client's buffers asynchronously
        if int((await client.info("clients"))["connected_clients"]) <= 1:
            break
        await asyncio.sleep(0.02)
    return await _memory(client)


async def run_scenario(client: aioredis.Redis, scenario: Scenario) -> Result:
    """FLUSHALL, fill through RedisConversationStore, and measure the difference."""
    await client.flushall()
    before, before_dataset = await _settled_memory(client)
    store = RedisConversationStore(
        client, max_messages=scenario.max_messages, ttl_seconds=scenario.ttl_seconds
    )
    rng = random.Random(scenario.seed)
    source = TextSource(rng)
    started = time.monotonic()
    kept: dict[int, list[int]] = {}
    gate = asyncio.Semaphore(64)

    async def fill(index: int) -> None:
        key = conversation_key(index)
        sizes: list[int] = []
        at = 1_764_000_000.0 + index * 3.7
        for _ in range(scenario.turns):
            turn = make_turn(source, scenario, at)
            sizes.extend(len(encode(m)) for m in turn.messages())
            async with gate:
                await store.append(key, turn)
            at += 61.3
        kept[index] = sizes[-store_cap(scenario) :]

    await asyncio.gather(*(fill(i) for i in range(scenario.users)))
    seconds = time.monotonic() - started
    after, after_dataset = await _settled_memory(client)
    payload = sum(sum(sizes) for sizes in kept.values())
    sample_key = store_key_name(conversation_key(0))
    encoding = await client.object("encoding", sample_key)
    sample_length = int(await client.llen(sample_key))
    return Result(
        users=scenario.users,
        turns=scenario.turns,
        messages_per_user=min(2 * scenario.turns, store_cap(scenario)),
        payload_bytes=payload,
        used_memory_bytes=after - before,
        used_memory_dataset_bytes=after_dataset - before_dataset,
        encoding=encoding.decode() if isinstance(encoding, bytes) else str(encoding),
        sample_length=sample_length,
        seconds=round(seconds, 2),
    )


async def run_dedup(client: aioredis.Redis, updates: int) -> float:
    """Bytes of used_memory per Telegram update remembered by UpdateDeduplicator (24 h TTL)."""
    await client.flushall()
    before, _ = await _settled_memory(client)
    dedup = UpdateDeduplicator(OnceMarks(client, KeySpace()), bot_id=7_000_000_001)
    gate = asyncio.Semaphore(64)

    async def claim(update_id: int) -> None:
        async with gate:
            assert await dedup.claim(update_id)

    first = 900_000_000
    for start in range(first, first + updates, 10_000):
        await asyncio.gather(
            *(claim(u) for u in range(start, min(start + 10_000, first + updates)))
        )
    after, _ = await _settled_memory(client)
    return (after - before) / updates if updates else 0.0


def store_cap(scenario: Scenario) -> int:
    """Messages kept per conversation: whole turns, as RedisConversationStore trims."""
    return max(2, scenario.max_messages - scenario.max_messages % 2)


def store_key_name(key: ConversationKey) -> str:
    """The history key the store writes for ``key``."""
    return KeySpace().history(key)


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on ``url``, closed afterwards."""
    client = aioredis.Redis.from_url(url, socket_timeout=30)
    try:
        yield client
    finally:
        await client.aclose()


async def measure(
    scenarios: Sequence[Scenario],
    url: str | None = None,
    binary: str | None = None,
    updates: int = 0,
) -> tuple[list[Result], dict[str, str]]:
    """Run every scenario on ``url`` or on a private redis-server; also return server facts
    (and, with ``updates``, the bytes per remembered Telegram update as `bytes_per_update`)."""
    with contextlib.ExitStack() as stack:
        target = url or stack.enter_context(redis_server(binary))
        async with connect(target) as client:
            server = await client.info("server")
            memory = await client.info("memory")
            facts = {
                "redis_version": str(server.get("redis_version", "?")),
                "mem_allocator": str(memory.get("mem_allocator", "?")),
                "python": platform.python_version(),
                "machine": f"{platform.machine()} {os.cpu_count()} cpus",
            }
            results = [await run_scenario(client, s) for s in scenarios]
            if updates:
                facts["bytes_per_update"] = f"{await run_dedup(client, updates):.0f}"
            await client.flushall()
    return results, facts


def table(results: Sequence[Result], facts: dict[str, str]) -> str:
    """A Markdown table of the results (what deploy/README.md shows)."""
    lines = [
        f"redis-server {facts['redis_version']} ({facts['mem_allocator']}), "
        f"Python {facts['python']}, {facts['machine']}",
        "",
        "| turns per user | messages kept | JSON payload / 1,000 users | used_memory / 1,000 users"
        " | overhead per message | list encoding |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        payload = r.payload_bytes / r.users * 1000 / 2**20
        lines.append(
            f"| {r.turns} | {r.messages_per_user} | {payload:.1f} MiB | "
            f"{r.per_1000_users_mib:.1f} MiB | {r.overhead_per_message:.0f} B | {r.encoding} |"
        )
    if "bytes_per_update" in facts:
        lines += [
            "",
            f"Telegram update de-duplication: {facts['bytes_per_update']} B of used_memory per "
            "update remembered (each is kept 24 h).",
        ]
    return "\n".join(lines)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=1000, help="synthetic users per scenario")
    parser.add_argument(
        "--turns", type=int, nargs="+", default=list(DEFAULT_TURNS), help="turns per user"
    )
    parser.add_argument("--user-chars", type=int, default=150, help="median user message")
    parser.add_argument("--answer-chars", type=int, default=1200, help="median stored answer")
    parser.add_argument("--max-messages", type=int, default=200, help="HISTORY_MAX_MESSAGES")
    parser.add_argument("--ttl", type=int, default=30 * 24 * 3600, help="HISTORY_TTL_SECONDS")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--updates",
        type=int,
        default=DEFAULT_UPDATES,
        help="Telegram update ids to remember through UpdateDeduplicator (0 = skip)",
    )
    parser.add_argument("--redis-url", default=None, help="measure on this (EMPTY!) Redis")
    parser.add_argument("--redis-server", default=None, help="redis-server binary to start")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scenarios and print the table (and write JSON when asked)."""
    args = _arguments(argv)
    scenarios = [
        Scenario(
            users=args.users,
            turns=turns,
            max_messages=args.max_messages,
            ttl_seconds=args.ttl,
            user_chars=args.user_chars,
            answer_chars=args.answer_chars,
            seed=args.seed,
        )
        for turns in args.turns
    ]
    results, facts = asyncio.run(
        measure(scenarios, args.redis_url, args.redis_server, args.updates)
    )
    print(table(results, facts))
    if args.json is not None:
        data = {
            "facts": facts,
            "scenarios": [asdict(s) for s in scenarios],
            "results": [
                {
                    **asdict(r),
                    "per_1000_users_mib": r.per_1000_users_mib,
                    "overhead_per_message": r.overhead_per_message,
                }
                for r in results
            ],
        }
        args.json.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
