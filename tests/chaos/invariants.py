"""What must hold after any amount of chaos, read back from Redis, the fakes and the logs.

Shared by the chaos suite and the many-replicas test: every history is whole turns that
alternate user/assistant with each answer belonging to its question; pacing is measured from
what the fake platforms recorded; logs show no unhandled exception.
"""

from __future__ import annotations

import gc
import itertools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pytest
import redis.asyncio as aioredis

from core.conversation import ConversationKey, Role, StoredMessage
from core.store.codec import decode_all
from core.store.keys import KeySpace
from tests.support.processes import PROBLEMS

KEYS = KeySpace()
ECHO = "You said: "  # the fake vLLM's default responder answers "You said: <message>"

UNHANDLED = PROBLEMS  # what an unhandled exception leaves in a log


def echo(text: str) -> str:
    """The fake model's whole answer to ``text``."""
    return ECHO + text


async def load_history(redis: aioredis.Redis, key: ConversationKey) -> list[StoredMessage]:
    """One conversation's stored messages, oldest first."""
    raws = await redis.lrange(KEYS.history(key), 0, -1)
    return decode_all(raws)


async def all_histories(redis: aioredis.Redis) -> dict[str, list[StoredMessage]]:
    """Every history list under Parley's prefix, by key name."""
    found: dict[str, list[StoredMessage]] = {}
    async for raw in redis.scan_iter(match=KEYS.history_pattern(), count=500):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        found[name] = decode_all(await redis.lrange(name, 0, -1))
    return found


async def lock_keys(redis: aioredis.Redis) -> list[str]:
    """Turn leases held right now."""
    names = [
        raw.decode() if isinstance(raw, bytes) else str(raw)
        async for raw in redis.scan_iter(match=f"{KEYS.prefix}:*:lock", count=500)
    ]
    return sorted(names)


@dataclass
class HistoryReport:
    """Problems found in one or many histories."""

    turns: int = 0
    problems: list[str] = field(default_factory=list)

    def extend(self, other: HistoryReport) -> None:
        """Merge another report into this one."""
        self.turns += other.turns
        self.problems += other.problems


def check_history(
    name: str,
    messages: Sequence[StoredMessage],
    *,
    answer_ok: Callable[[str, str], bool] | None = None,
) -> HistoryReport:
    """Whole turns only: even length, user then assistant, each answer fits its question.

    ``answer_ok(question, answer)`` defaults to the echo rule (answer == "You said: question").
    """
    ok = answer_ok or (lambda question, answer: answer == echo(question))
    report = HistoryReport(turns=len(messages) // 2)
    if len(messages) % 2:
        report.problems.append(f"{name}: odd length {len(messages)} (a half-saved turn)")
    for index, message in enumerate(messages):
        expected = Role.USER if index % 2 == 0 else Role.ASSISTANT
        if message.role is not expected:
            report.problems.append(f"{name}[{index}]: {message.role} where {expected} belongs")
            return report
    for question, answer in zip(messages[::2], messages[1::2], strict=False):
        if not ok(question.content, answer.content):
            report.problems.append(
                f"{name}: answer {answer.content[:80]!r} does not belong to "
                f"question {question.content[:80]!r}"
            )
    return report


def questions(messages: Sequence[StoredMessage]) -> list[str]:
    """The user messages of a history, in order."""
    return [m.content for m in messages if m.role is Role.USER]


def max_in_window(times: Iterable[float], window: float) -> int:
    """The most events inside any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def min_gap(times: Iterable[float]) -> float:
    """The shortest time between two consecutive events (inf with fewer than two)."""
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    return min(gaps, default=float("inf"))


def _from_a_fake(record: logging.LogRecord) -> bool:
    """A fake server's own complaint about a client that went away (the chaos does that)."""
    if record.exc_info is None:
        return False
    text = record.exc_text or logging.Formatter().formatException(record.exc_info)
    return "/tests/fakes/" in text and "/core/" not in text and "/bots/" not in text


def unhandled_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the test's log records show of unhandled exceptions so far.

    A garbage collection runs first, so a task that died unseen reports it now, not during a
    later test. Records from the fakes' own servers about vanished clients are left out.
    """
    gc.collect()
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    unique = list({id(r): r for r in records}.values())
    return unhandled_in_records(r for r in unique if not _from_a_fake(r))


def unhandled_in_records(records: Iterable[logging.LogRecord]) -> list[str]:
    """Log records that carry an exception or say one went unhandled."""
    found = []
    for record in records:
        text = record.getMessage()
        if record.exc_info is not None or UNHANDLED.search(text):
            found.append(f"{record.levelname} {record.name}: {text[:300]}")
    return found


def unhandled_in_text(text: str) -> list[str]:
    """Lines of a process log that show an unhandled exception."""
    return [line for line in text.splitlines() if UNHANDLED.search(line)]
