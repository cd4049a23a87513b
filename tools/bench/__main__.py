"""`python -m tools.bench` (`make bench`): run the benchmarks, print a table, write JSON.

Each figure is a ratio or count from one run, not a pass/fail test; see docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from pathlib import Path

from bots import event_loop
from tools.bench import plots
from tools.bench.config import BenchConfig, smoke
from tools.bench.results import table, write_json
from tools.bench.runner import ALL, report

DEFAULT_OUT = Path("bench-results/latest.json")


class _Counter(logging.Handler):
    """Counts warnings and errors so the table can say how many the run logged."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    parser.add_argument("--no-vllm", action="store_true", help="skip figure 6 (real vLLM)")
    parser.add_argument(
        "--only",
        help="comma-separated figure numbers, e.g. 1,5 or 3,7 (7: Slack, 8: memory; default: 1-8)",
    )
    parser.add_argument("--levels", help="concurrency levels for figure 2, e.g. 100,250,500")
    parser.add_argument(
        "--asyncio", action="store_true", help="plain asyncio even where uvloop is installed"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds, not minutes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run, print, write; the exit status is 0 whatever the numbers are."""
    args = _parse(argv)
    cfg = smoke() if args.smoke else BenchConfig()
    if args.levels:
        cfg = dataclasses.replace(cfg, levels=tuple(int(n) for n in args.levels.split(",")))
    selected = frozenset(int(n) for n in args.only.split(",")) if args.only else ALL
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.out.with_suffix(".log")
    logging.basicConfig(
        filename=log_path,
        filemode="w",
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    counter = _Counter()
    logging.getLogger().addHandler(counter)
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    run = asyncio.run if args.asyncio else event_loop.runner()
    figures, body = run(report(cfg, selected, with_vllm=not args.no_vllm, say=say))
    body["event_loop"] = run.__module__.split(".")[0]
    body["logged_warnings"] = counter.count
    write_json(args.out, body)
    drawn = plots.draw(body, args.out.parent)
    print(table(figures))
    print(
        f"\nload average before/after: {body['load_average']['before']} / "
        f"{body['load_average']['after']} on {body['machine']['nproc']} CPUs; "
        f"{counter.count} warnings logged to {log_path}; event loop: {body['event_loop']}; "
        f"JSON: {args.out}"
    )
    if drawn:
        print("figures drawn: " + ", ".join(str(path) for path in drawn))
    return 0


if __name__ == "__main__":
    sys.exit(main())
