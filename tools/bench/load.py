"""Many conversations streaming at once through one bot process: the shared load generator."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.results import Outcome
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


async def run_load(env: Env, load: Load) -> LoadRun:
    """Start every conversation (spread over the ramp), wait for all to finish, collect."""
    answer_tokens = max(2, round(load.stream_seconds / load.token_interval))
    await env.configure_model(
        first_token_delay=load.first_token_delay,
        token_interval=load.token_interval,
        reasoning_tokens=REASONING_TOKENS,
        answer_tokens=answer_tokens,
        tokens_per_chunk=load.tokens_per_chunk,
    )
    await env.configure_platform(rtt=load.rtt, rules=load.rules, scale=load.rule_scale)
    private, groups = chat_ids(load)
    await env.open_chats(private, groups)
    chats = [(c, True) for c in private] + [(c, False) for c in groups]
    rng = random.Random(load.conversations)  # arrivals spread at random, reproducibly
    offsets = sorted(rng.uniform(0, load.ramp_seconds) for _ in chats)
    async with running_bot(env, load.pacing) as bench:
        gc.collect()

        async def one(chat: int, private: bool, offset: float) -> str:
            await asyncio.sleep(offset)
            try:
                return (await bench.converse(chat, "hello", private=private)).outcome.value
            except Exception as exc:  # handle() must not raise; count it if it does
                log.error("a turn raised: %r", exc)
                return f"raised {type(exc).__name__}"

        helper_cpu = env.helper_cpu()
        wait = run_queue_wait()
        cpu = time.process_time()
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(
                one(chat, private, offset)
                for (chat, private), offset in zip(chats, offsets, strict=True)
            )
        )
        wall = time.monotonic() - started
        cpu = time.process_time() - cpu
        wait = run_queue_wait() - wait
        helper_cpu = env.helper_cpu() - helper_cpu
    return LoadRun(
        started=started,
        wall_seconds=wall,
        bot_cpu_seconds=cpu,
        bot_wait_seconds=wait,
        helper_cpu_seconds=helper_cpu,
        outcomes=Counter(outcomes),
        platform=await env.platform_stats(),
        model=await env.model_stats(),
        chat_ids=[c for c, _ in chats],
    )
