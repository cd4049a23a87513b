"""What must hold after any amount of chaos, read back from Redis and the fakes.

Shared by the chaos suite and the many-replicas test: every history is whole turns that
alternate user/assistant with each answer belonging to its question; pacing is measured from
what the fake platforms recorded. The logs are checked with tests.support.logs (no unhandled
exception of the bot's).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from core.conversation import ConversationKey, Role, StoredMessage
from core.results import Outcome
from core.store.client import RedisClient
from core.store.codec import decode_all
from core.store.keys import KeySpace

KEYS = KeySpace()
ECHO = "You said: "  # the fake vLLM's default responder answers "You said: <message>"


def echo(text: str) -> str:
    """The fake model's whole answer to ``text``."""
    return ECHO + text


async def load_history(redis: RedisClient, key: ConversationKey) -> list[StoredMessage]:
    """One conversation's stored messages, oldest first."""
    raws = await redis.lrange(KEYS.history(key), 0, -1)
    return decode_all(raws)


async def all_histories(redis: RedisClient) -> dict[str, list[StoredMessage]]:
    """Every history list under Parley's prefix, by key name."""
    found: dict[str, list[StoredMessage]] = {}
    async for raw in redis.scan_iter(match=KEYS.history_pattern(), count=500):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        found[name] = decode_all(await redis.lrange(name, 0, -1))
    return found


async def lock_keys(redis: RedisClient) -> list[str]:
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


@dataclass
class Talk:
    """One user's conversation: what was asked, what was seen, how each turn ended."""

    key: ConversationKey
    asked: list[str] = field(default_factory=list)
    seen: list[list[str]] = field(default_factory=list)
    outcomes: list[tuple[Outcome, bool]] = field(default_factory=list)
