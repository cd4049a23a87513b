"""`python -m tools.bench.micro render`: CPU per edit of rendering a growing answer, whole
against from the kept part, on both platforms (no services needed)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bots.slack import render as slack
from bots.telegram import render as telegram
from bots.telegram.sink import payloads
from core.sink import Segment, SegmentKind

_PARAGRAPH = (
    "The **derivative** of $x^2$ is `2x`; see [the notes](https://example.org/calc) for why. "
    "We can check it with a limit, and the same idea works for any power of x. "
)


def model_answer(size: int) -> str:
    """A Markdown answer of about ``size`` characters: paragraphs, lists and code, as R1 writes."""
    parts: list[str] = []
    length, n = 0, 0
    while length < size:
        n += 1
        block = _PARAGRAPH * 2 + "\n\n"
        if n % 3 == 0:
            block += "- first point\n- second point with *emphasis*\n\n"
        if n % 4 == 0:
            block += "```python\ndef f(x):\n    return x * x\n```\n\n"
        parts.append(block)
        length += len(block)
    return "".join(parts)[:size]


def _per_edit(edit: Callable[[str], object], answer: str, step: int, repeats: int) -> float:
    """Median CPU µs per edit over the answer's growth, one edit every ``step`` characters."""
    cuts = range(step, len(answer) + 1, step)
    runs = []
    for _ in range(repeats):
        started = time.process_time()
        for cut in cuts:
            edit(answer[:cut])
        runs.append((time.process_time() - started) / len(cuts) * 1e6)
    return statistics.median(runs)


def render_cost(size: int, step: int, repeats: int = 5) -> str:
    """One line: µs per edit for Telegram (entities) and Slack (mrkdwn), whole and growing."""
    answer = model_answer(size)

    def telegram_edit(answer_render: Callable[[str], telegram.Rendered]) -> Callable[[str], object]:
        return lambda text: payloads((Segment(SegmentKind.ANSWER, text),), answer_render)

    def slack_edit(answer_render: Callable[[str], str]) -> Callable[[str], object]:
        return lambda text: slack.render((Segment(SegmentKind.ANSWER, text),), answer_render)

    figures = {
        "telegram whole": _per_edit(telegram_edit(telegram.markdown), answer, step, repeats),
        "telegram growing": _per_edit(
            telegram_edit(telegram.GrowingMarkdown()), answer, step, repeats
        ),
        "slack whole": _per_edit(slack_edit(slack.markdown_to_mrkdwn), answer, step, repeats),
        "slack growing": _per_edit(slack_edit(slack.GrowingMrkdwn()), answer, step, repeats),
    }
    shown = ", ".join(f"{name} {us:.0f} µs" for name, us in figures.items())
    return f"render: per edit of a {len(answer)}-character answer, one every {step}: {shown}"
