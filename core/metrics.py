"""Prometheus metrics for the turn pipeline; one registry per process, injected, never global."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
_RATE_BUCKETS = (1, 5, 10, 20, 40, 60, 100, 200, 400)


class Metrics:
    """Everything an operator watches: latency, throughput, pacing, errors, load."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.time_to_first_token = Histogram(
            "parley_time_to_first_token_seconds",
            "From the request to the model's first token (reasoning included).",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.time_to_first_answer = Histogram(
            "parley_time_to_first_visible_answer_seconds",
            "From the request to the first answer text shown to the user.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens_per_second = Histogram(
            "parley_tokens_per_second",
            "Completion tokens per second of each reply.",
            buckets=_RATE_BUCKETS, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "parley_tokens", "Tokens through the model.", ["direction"], registry=r
        )
        self.edits = Counter(
            "parley_message_writes",
            "Sends and edits: sent, or skipped because newer text superseded them.",
            ["result"], registry=r,
        )  # fmt: skip
        self.rate_limited = Counter(
            "parley_rate_limited", "429 answers from the messaging platforms.", registry=r
        )
        self.errors = Counter("parley_errors", "Failed turns by kind.", ["kind"], registry=r)
        self.turns = Counter("parley_turns", "Turns by outcome.", ["outcome"], registry=r)
        self.active_streams = Gauge(
            "parley_active_streams", "Replies streaming right now.", registry=r
        )
        self.queued_turns = Gauge(
            "parley_queued_turns", "Messages waiting for their conversation.", registry=r
        )
