"""`python -m tools.bench.profile` counts each package's CPU where it is spent."""

from __future__ import annotations

import cProfile
import json
import pstats

from tools.bench.profile import group_of, shares


def test_functions_are_grouped_by_the_package_they_live_in() -> None:
    site = "/venv/lib/python3.11/site-packages"
    assert group_of(f"{site}/telegram/_bot.py") == "python-telegram-bot"
    assert group_of(f"{site}/redis/asyncio/client.py") == "redis-py"
    assert group_of("/work/main/core/stream/reply.py") == "reply stream (core/stream)"
    assert group_of("/work/main/core/turns.py") == "the rest of core/"
    assert group_of("~") == "built-ins (C)"


def _parse_a_lot() -> None:
    """Python code of this file calling a C built-in."""
    for _ in range(2_000):
        json.loads('{"a": [1, 2, 3]}')


def test_a_builtins_time_counts_for_the_package_that_called_it() -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    _parse_a_lot()
    profiler.disable()
    measured = dict(shares(pstats.Stats(profiler)))
    assert abs(sum(measured.values()) - 1.0) < 1e-9
    # Every built-in called here had a Python caller; only the profiler's own switch-off
    # has none.
    assert measured.get("built-ins (C)", 0.0) < 0.05
    assert measured["json"] > 0  # json.loads is Python; its C scanner counts as json's
