"""Benchmark sizes and timings: the full run (`make bench`) and a tiny one for the smoke test."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    """Every knob; defaults are the full run (about four minutes on two cores)."""

    rtt: float = 0.05  # Bot API round trip (api.telegram.org from a European host: 30–60 ms)
    chat_interval: float = 1.0  # Telegram: one write per second per chat
    rule_scale: float = 1.0  # shrinks the fake's flood windows along with chat_interval
    token_interval: float = 0.05  # 20 tokens/s per stream, a busy vLLM's per-stream rate
    tokens_per_chunk: int = 4  # vLLM's --stream-interval, as deploy/ serves it

    # 1. overhead to the first visible answer token
    ttft_runs: int = 30
    ttft_first_token_delay: float = 1.2  # past the status message's pacing slot
    ttft_stagger: float = 0.15

    # 2. concurrent streams with edit lag p99 ≤ target
    levels: tuple[int, ...] = (25, 50, 100, 250, 500, 1000, 1500)
    level_stream_seconds: float = 12.0  # each answer streams this long
    level_ramp_seconds: float = 2.0  # conversations start spread over this
    level_warmup_seconds: float = 2.0  # lags from slots before ramp + warmup are not counted
    lag_target: float = 0.1

    # 3. CPU per streamed token
    cpu_streams: int = 100
    cpu_stream_seconds: float = 8.0

    # 4. 429s at 200 concurrent chats under Telegram's limits
    rl_chats: int = 200
    rl_groups: int = 50  # of those chats, supergroups (20 writes per minute)
    rl_stream_seconds: float = 15.0

    # 5. context fitting
    fit_messages: int = 10_000
    fit_runs: int = 50

    # 6. real vLLM on CPU
    vllm_runs: int = 5

    # 7. Slack: CPU per streamed token (cpu_streams conversations of cpu_stream_seconds, as 3),
    # paced as the adapter's defaults: SLACK_UPDATES_PER_MINUTE (Tier 3, per workspace) and
    # SLACK_CHANNEL_INTERVAL
    slack_updates_per_minute: float = 50.0
    slack_channel_interval: float = 1.0

    # 8. resident memory per active stream
    memory_streams: int = 200
    memory_stream_seconds: float = 6.0


def smoke() -> BenchConfig:
    """Tiny sizes and time scaled by 20: exercises every code path in a few seconds."""
    return BenchConfig(
        rtt=0.002,
        chat_interval=0.05,
        rule_scale=0.05,
        token_interval=0.005,
        ttft_runs=3,
        ttft_first_token_delay=0.08,
        ttft_stagger=0.01,
        levels=(3, 6),
        level_stream_seconds=0.4,
        level_ramp_seconds=0.05,
        level_warmup_seconds=0.05,
        cpu_streams=3,
        cpu_stream_seconds=0.3,
        rl_chats=6,
        rl_groups=2,
        rl_stream_seconds=0.4,
        fit_messages=200,
        fit_runs=3,
        vllm_runs=1,
        slack_updates_per_minute=1000.0,
        slack_channel_interval=0.05,
        memory_streams=4,
        memory_stream_seconds=0.2,
    )
