"""A run's figures drawn as PNGs beside its JSON: matplotlib (the `bench` extra), else nothing.

Two pictures: edit lag against concurrent streams (figure 2, with the bot's CPU use), and the
bot's CPU per streamed token split into the token path and the rest (figure 3, with the Slack
bot's of figure 7 beside it when both ran).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any


def draw(body: dict[str, Any], directory: Path) -> list[Path]:
    """Write what the run measured as PNGs into ``directory``; [] without matplotlib."""
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return []
    matplotlib.use("Agg")  # files only, never a window
    figures = {f["number"]: f for f in body["figures"] if f.get("value") is not None}
    title = f"{body['finished_at']}, load {body['load_average']['before'][0]}"
    paths: list[Path] = []
    if 2 in figures and figures[2]["details"].get("levels"):
        paths.append(_lag(figures[2], directory / "lag-vs-streams.png", title))
    if 3 in figures:
        path = directory / "cpu-per-token.png"
        paths.append(_cpu(figures[3], path, title, slack=figures.get(7)))
    return paths


def _lag(figure: dict[str, Any], path: Path, title: str) -> Path:
    """Edit lag p50/p99 and bot CPU use at each concurrency level of figure 2."""
    import matplotlib.pyplot as plt

    levels = figure["details"]["levels"]
    streams = [level["conversations"] for level in levels]
    fig, lag = plt.subplots(figsize=(7, 4))
    for q in ("p50", "p99"):
        lag.plot(streams, [level["lag_ms"][q] for level in levels], marker="o", label=f"lag {q}")
    lag.axhline(figure["details"].get("lag_target_ms", 100.0), linestyle=":", color="grey")
    lag.set(xscale="log", yscale="log", xlabel="concurrent streams", ylabel="edit lag (ms)")
    lag.set_xticks(streams, [str(n) for n in streams])
    lag.minorticks_off()
    cpu = lag.twinx()
    used = [100 * level["bot_cpu_utilisation"] for level in levels]
    cpu.plot(streams, used, color="tab:red", marker="s", linestyle="--", label="bot CPU %")
    cpu.set(ylabel="bot CPU (%)", ylim=(0, 105))
    fig.legend(loc="center left", bbox_to_anchor=(0.1, 0.6))
    lag.set_title(f"Figure 2: edit lag against streams ({title})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cpu(
    figure: dict[str, Any], path: Path, title: str, slack: dict[str, Any] | None = None
) -> Path:
    """Whole-bot CPU per token, stacked: the token path and everything else (edits, turns).

    Slack's bar (figure 7) borrows figure 3's token path at 4 per chunk: reading the model
    stream into a reply is the same code whichever platform the reply goes to."""
    import matplotlib.pyplot as plt

    details = figure["details"]
    labels = ["4 tokens per chunk", "1 token per chunk"]
    whole = [float(figure["value"]), float(details["whole_bot_us_1_token_per_chunk"])]
    path_only = [
        float(details["token_path_only_us_4_tokens_per_chunk"]),
        float(details["token_path_only_us"]),
    ]
    if slack is not None:
        labels = [f"Telegram, {label}" for label in labels]
        labels.append(f"Slack, {slack['details']['tokens_per_chunk']} tokens per chunk")
        whole.append(float(slack["value"]))
        path_only.append(path_only[0])
    rest = [max(0.0, w - p) for w, p in zip(whole, path_only, strict=True)]
    fig, ax = plt.subplots(figsize=(6 + 2 * (len(labels) - 2), 4))
    ax.bar(labels, path_only, label="token path (model stream → reply)")
    ax.bar(labels, rest, bottom=path_only, label="the rest (edits, Redis, turns)")
    for x, total in enumerate(whole):
        ax.annotate(f"{total:.0f} µs", (x, total), ha="center", va="bottom")
    ax.set(ylabel="bot CPU per streamed token (µs)")
    heading = "Figures 3 and 7" if slack is not None else "Figure 3"
    ax.set_title(f"{heading}: CPU per token by stage ({title})", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
