"""Figures, the table printed at the end, and the JSON written to bench-results/."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    """statistics.median, NaN for no values."""
    return statistics.median(values) if values else float("nan")


@dataclass
class Figure:
    """One reported number: a ratio or count from one run, with its target."""

    number: int
    name: str
    value: float | None  # None: not measured (skipped), see note
    unit: str
    target: float
    direction: Literal["<=", ">="]
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def met(self) -> bool | None:
        """Whether the target was met; None when the figure was skipped."""
        if self.value is None or self.value != self.value:  # NaN
            return None
        return self.value <= self.target if self.direction == "<=" else self.value >= self.target

    def to_json(self) -> dict[str, Any]:
        """The figure with its verdict."""
        return {**asdict(self), "met": self.met}


def _number(value: float | None) -> str:
    """Compact, with enough digits for small ratios."""
    if value is None or value != value:
        return "—"
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def table(figures: Sequence[Figure]) -> str:
    """A plain-text table: one line per figure, notes underneath."""
    rows = [("#", "figure", "value", "target", "met")]
    for f in figures:
        verdict = {True: "yes", False: "NO", None: "skipped"}[f.met]
        value = f"{_number(f.value)} {f.unit}" if f.value is not None else "—"
        rows.append((str(f.number), f.name, value, f"{f.direction} {_number(f.target)}", verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {f.number}. {f.note}" for f in figures if f.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the machine skews every timing)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write the report, creating the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
