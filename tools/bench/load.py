"""Many conversations streaming at once through one bot process: the shared load generator."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.results import Outcome, TurnResult
from tools.bench.bot import Pacing, running_bot
from tools.bench.env import Env
from tools.bench.procs import run_queue_wait

log = logging.getLogger(__name__)

REASONING_TOKENS = 10


@dataclass(frozen=True)
class Load:
    """What to run: how many conversations, how long each answer streams, which limits."""

    conversations: int
    stream_seconds: float
    token_interval: float
    ramp_seconds: float
    pacing: Pacing
    rules: str  # the fake platform's: "telegram" or "per_chat"
    rtt: float
    rule_scale: float = 1.0
    groups: int = 0  # how many of the conversations are in supergroups
    first_token_delay: float = 0.2
    tokens_per_chunk: int = 1  # vLLM's --stream-interval


@dataclass
class LoadRun:
    """What happened, from the bot's side and from both fakes' records."""

    started: float  # monotonic, when the first conversation began
    wall_seconds: float
    bot_cpu_seconds: float
    bot_wait_seconds: float  # runnable but waiting for a CPU (other processes had it)
    helper_cpu_seconds: float
    outcomes: Counter[str]
    platform: dict[str, Any]
    model: dict[str, Any]
    chat_ids: list[int] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        """Reasoning and answer tokens the model server streamed."""
        return int(self.model["tokens"])

    @property
    def answered(self) -> int:
        """Turns that ended with a whole answer."""
        return self.outcomes[Outcome.ANSWERED.value]


def chat_ids(load: Load) -> tuple[list[int], list[int]]:
    """Private chat ids (positive) and supergroup ids (negative, as Telegram's)."""
    private = [1_000 + i for i in range(load.conversations - load.groups)]
    groups = [-1_000_000_000_000 - i for i in range(load.groups)]
    return private, groups


async def configure_stream(
    env: Env,
    *,
    stream_seconds: float,
    token_interval: float,
    first_token_delay: float,
    tokens_per_chunk: int,
) -> None:
    """Have the model server stream answers this long, this fast, chunked like vLLM."""
    await env.configure_model(
        first_token_delay=first_token_delay,
        token_interval=token_interval,
        reasoning_tokens=REASONING_TOKENS,
        answer_tokens=max(2, round(stream_seconds / token_interval)),
        tokens_per_chunk=tokens_per_chunk,
    )


@dataclass
class Timed:
    """The bot's side of one load: when it ran, what it cost, how each turn ended."""

    started: float
    wall_seconds: float
    bot_cpu_seconds: float
    bot_wait_seconds: float
    helper_cpu_seconds: float
    outcomes: Counter[str]

    def run(self, platform: dict[str, Any], model: dict[str, Any], chat_ids: list[int]) -> LoadRun:
        """The whole record, with both fakes' side of it."""
        return LoadRun(
            started=self.started,
            wall_seconds=self.wall_seconds,
            bot_cpu_seconds=self.bot_cpu_seconds,
            bot_wait_seconds=self.bot_wait_seconds,
            helper_cpu_seconds=self.helper_cpu_seconds,
            outcomes=self.outcomes,
            platform=platform,
            model=model,
            chat_ids=chat_ids,
        )


async def timed_turns(
    env: Env, turns: Sequence[Callable[[], Awaitable[TurnResult]]], ramp_seconds: float
) -> Timed:
    """Start every turn at a random moment of the ramp, wait for all, measure the bot."""
    rng = random.Random(len(turns))  # arrivals spread at random, reproducibly
    offsets = sorted(rng.uniform(0, ramp_seconds) for _ in turns)
    gc.collect()

    async def one(turn: Callable[[], Awaitable[TurnResult]], offset: float) -> str:
        await asyncio.sleep(offset)
        try:
            return (await turn()).outcome.value
        except Exception as exc:  # handle() must not raise; count it if it does
            log.error("a turn raised: %r", exc)
            return f"raised {type(exc).__name__}"

    helper_cpu = env.helper_cpu()
    wait = run_queue_wait()
    cpu = time.process_time()
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(one(turn, offset) for turn, offset in zip(turns, offsets, strict=True))
    )
    return Timed(
        started=started,
        wall_seconds=time.monotonic() - started,
        bot_cpu_seconds=time.process_time() - cpu,
        bot_wait_seconds=run_queue_wait() - wait,
        helper_cpu_seconds=env.helper_cpu() - helper_cpu,
        outcomes=Counter(outcomes),
    )


async def run_load(env: Env, load: Load) -> LoadRun:
    """Start every conversation (spread over the ramp), wait for all to finish, collect."""
    await configure_stream(
        env,
        stream_seconds=load.stream_seconds,
        token_interval=load.token_interval,
        first_token_delay=load.first_token_delay,
        tokens_per_chunk=load.tokens_per_chunk,
    )
    await env.configure_platform(rtt=load.rtt, rules=load.rules, scale=load.rule_scale)
    private, groups = chat_ids(load)
    await env.open_chats(private, groups)
    chats = [(c, True) for c in private] + [(c, False) for c in groups]
    async with running_bot(env, load.pacing) as bench:
        turns = [
            functools.partial(bench.converse, chat, "hello", private=private)
            for chat, private in chats
        ]
        timed = await timed_turns(env, turns, load.ramp_seconds)
    return timed.run(await env.platform_stats(), await env.model_stats(), [c for c, _ in chats])
