"""`python -m tools.bench.profile`: where the bot's CPU goes under one figure's load.

Runs the selected figures (figure 3 by default: 100 conversations streaming) under cProfile
in the bot process and prints each package's share of the profiled CPU (own time of its
functions), then the costliest functions. The model server, the fake platforms and Redis are
other processes, so what is printed is the bot alone. The clock is CPU time, so
waiting is not counted; the bot's start-up is (but for the tokenizer, loaded first), and is
small against a full-size load. cProfile slows Python code down more than C code, so shares are
evidence of where time goes, not timings; a profiled run's figures are not `make bench`'s.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

from bots import event_loop
from core.tokens import qwen_encoding
from tools.bench.config import BenchConfig, smoke
from tools.bench.runner import report

DEFAULT_OUT = Path("bench-results/profile.pstats")
# A function's file → the package it is counted under (the first match wins).
_GROUPS = (
    ("/telegram/", "python-telegram-bot"),
    ("/slack_sdk/", "slack_sdk"),
    ("/slack_bolt/", "slack_bolt"),
    ("/aiohttp/", "aiohttp"),
    ("/multidict/", "aiohttp"),
    ("/yarl/", "aiohttp"),
    ("/redis/", "redis-py"),
    ("/uvloop/", "event loop"),
    ("/asyncio/", "event loop"),
    ("/telegramify_markdown/", "rendering"),
    ("/mistletoe/", "rendering"),
    ("bots/telegram/render", "rendering"),
    ("bots/slack/render", "rendering"),
    ("/core/stream/", "reply stream (core/stream)"),
    ("/core/llm/", "model stream (core/llm)"),
    ("/core/", "the rest of core/"),
    ("/bots/", "the rest of bots/"),
    ("/tools/bench/", "the benchmark's own driver"),
    ("/json/", "json"),
    ("/urllib/", "urllib"),
)


def group_of(filename: str) -> str:
    """The package a profiled function belongs to (C built-ins by their own name)."""
    if filename == "~":
        return "built-ins (C)"
    for needle, name in _GROUPS:
        if needle in filename:
            return name
    return "other Python"


def shares(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Each package's own time as a share of the whole, largest first; a C built-in's time
    counts for the package that called it (``len`` in redis-py is redis-py's)."""
    own: Counter[str] = Counter()
    table = stats.stats  # type: ignore[attr-defined]
    for (filename, _, _), (_, _, tottime, _, callers) in table.items():
        if filename != "~" or not callers:
            own[group_of(filename)] += tottime
            continue
        for (caller_file, _, _), (_, _, spent, _) in callers.items():
            own[group_of(caller_file)] += spent
    total = sum(own.values()) or 1.0
    return [(name, seconds / total) for name, seconds in own.most_common()]


def main(argv: list[str] | None = None) -> int:
    """Profile, save the raw profile, print the shares and the top functions."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench.profile", description=__doc__)
    parser.add_argument("--only", default="3", help="figures to run, e.g. 3 or 2,3")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds, not minutes)")
    parser.add_argument("--top", type=int, default=25, help="functions to list")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the raw profile (pstats)")
    args = parser.parse_args(argv)
    cfg = smoke() if args.smoke else BenchConfig()
    selected = frozenset(int(n) for n in args.only.split(","))
    qwen_encoding()  # loaded once per process (~0.3 s): start-up, not the load
    profiler = cProfile.Profile(time.process_time)  # CPU, not time spent waiting
    run = event_loop.runner()
    profiler.enable()
    try:
        figures, _ = run(report(cfg, selected, with_vllm=False, say=lambda _: None))
    finally:
        profiler.disable()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(args.out)
    stats = pstats.Stats(profiler)
    print(f"figures {args.only}: " + ", ".join(f"{f.number} = {f.value}" for f in figures))
    print("\nshare of the bot's profiled CPU (own time), by package:")
    for name, share in shares(stats):
        if share >= 0.005:
            print(f"  {share:6.1%}  {name}")
    print(f"\nthe {args.top} costliest functions (own time); raw profile: {args.out}")
    stats.sort_stats(pstats.SortKey.TIME).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
