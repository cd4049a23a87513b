"""`make soak` (`python -m tools.bench.soak`): hours of churn in minutes, to see memory stay flat.

``--chats`` conversations stream at once, each in one of ten times as many chats; as soon as
one ends, the next starts in the next chat, so the bot keeps meeting chats it has not seen for a
while. The bot's resident memory is sampled every ``--every`` seconds. After the first fifth of
the run (warm-up: pools, caches and the allocator settle), it must stay within ±5 % of its value
at the end of the warm-up. Not part of CI: it takes ``--minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections import Counter
from pathlib import Path

from bots import event_loop
from tools.bench.bot import Pacing, running_bot
from tools.bench.env import running_env
from tools.bench.fig_memory import resident_bytes
from tools.bench.load import REASONING_TOKENS
from tools.bench.procs import pin, plan_cpus

DEFAULT_OUT = Path("bench-results/soak.json")


async def soak(minutes: float, chats: int, every: float) -> dict[str, object]:
    """Run the churn, sample memory, and judge flatness after the warm-up."""
    cpus = plan_cpus()
    pin(0, cpus.bot)
    async with running_env(cpus) as env:
        await env.configure_model(
            first_token_delay=0.2,
            token_interval=0.05,
            reasoning_tokens=REASONING_TOKENS,
            answer_tokens=160,  # about 8 s per answer
            tokens_per_chunk=4,
        )
        await env.configure_platform(rtt=0.05, rules="per_chat")
        pool = [1_000 + i for i in range(chats * 10)]
        await env.open_chats(pool)
        next_chat = itertools.cycle(pool)
        deadline = time.monotonic() + minutes * 60
        outcomes: Counter[str] = Counter()
        samples: list[tuple[float, int]] = []
        async with running_bot(env, Pacing(bot_per_second=0)) as bench:

            async def lane() -> None:
                while time.monotonic() < deadline:
                    result = await bench.converse(next(next_chat), "hello")
                    outcomes[result.outcome.value] += 1

            lanes = asyncio.gather(*(lane() for _ in range(chats)))
            started = time.monotonic()
            while not lanes.done():
                samples.append((round(time.monotonic() - started, 1), resident_bytes()))
                await asyncio.sleep(every)
            await lanes
    warm = samples[len(samples) // 5 :] or samples
    base = warm[0][1]
    drift = max(abs(rss - base) / base for _, rss in warm)
    return {
        "minutes": minutes,
        "chats_at_once": chats,
        "turns": sum(outcomes.values()),
        "outcomes": dict(outcomes),
        "rss_after_warmup_mb": round(base / 2**20, 1),
        "rss_at_end_mb": round(samples[-1][1] / 2**20, 1),
        "largest_drift": round(drift, 4),
        "flat": drift <= 0.05,
        "samples": [(t, round(rss / 2**20, 2)) for t, rss in samples],
    }


def main(argv: list[str] | None = None) -> int:
    """Soak, print the verdict, write the samples; exit 1 when memory did not stay flat."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    result = event_loop.run(soak(args.minutes, args.chats, args.every))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(
        f"{result['turns']} turns ({result['outcomes']}) in {args.minutes:g} min at "
        f"{args.chats} chats: resident memory "
        f"{result['rss_after_warmup_mb']} MB after the warm-up, {result['rss_at_end_mb']} MB at "
        f"the end, largest drift {float(str(result['largest_drift'])) * 100:.1f} % "
        f"({'flat' if result['flat'] else 'NOT flat'}); samples in {args.out}"
    )
    return 0 if result["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
