"""Figure 5: time to fit a 10,000-message history into the prompt budget (core.context.fit).

The history alternates questions (20–200 tokens) and answers (50–1,500 tokens); the budget
is the one ChatService derives for the default settings against a 32k-token context (32,768
− 4,096 reply − 16 margin). Reported: p50 over ``fit_runs`` calls. The details add the worst
case, a budget large enough to keep every message.
"""

from __future__ import annotations

import random
import time

from core.context import fit
from core.conversation import Role, StoredMessage
from tools.bench.config import BenchConfig
from tools.bench.results import Figure, median, percentile

BUDGET = 32_768 - 4_096 - 16


def history(messages: int, seed: int = 5) -> list[StoredMessage]:
    """Alternating user/assistant messages with realistic token counts, oldest first."""
    rng = random.Random(seed)
    out: list[StoredMessage] = []
    for i in range(messages):
        if i % 2 == 0:
            out.append(StoredMessage(Role.USER, f"question {i}", rng.randint(20, 200)))
        else:
            out.append(StoredMessage(Role.ASSISTANT, f"answer {i}", rng.randint(50, 1500)))
    return out


def timings(messages: list[StoredMessage], budget: int, runs: int) -> tuple[list[float], int]:
    """Seconds per fit() call, and how many messages the last one kept."""
    new = StoredMessage(Role.USER, "and now?", 12)
    seconds: list[float] = []
    kept = 0
    for _ in range(runs):
        start = time.perf_counter()
        fitted = fit(messages, new, budget=budget)
        seconds.append(time.perf_counter() - start)
        kept = fitted.kept_messages
    return seconds, kept


def run(cfg: BenchConfig) -> Figure:
    """Fit with the realistic budget, then with one that keeps everything."""
    messages = history(cfg.fit_messages)
    realistic, kept = timings(messages, BUDGET, cfg.fit_runs)
    everything = sum(m.tokens + 2 for m in messages) + 100
    worst, kept_all = timings(messages, everything, cfg.fit_runs)
    return Figure(
        5,
        f"fit a {cfg.fit_messages:,}-message history (p50)",
        median(realistic) * 1000,
        "ms",
        2.0,
        "<=",
        details={
            "budget_tokens": BUDGET,
            "kept_messages": kept,
            "p90_ms": percentile(realistic, 90) * 1000,
            "keep_everything_p50_ms": median(worst) * 1000,
            "keep_everything_kept_messages": kept_all,
            "runs": cfg.fit_runs,
        },
    )
