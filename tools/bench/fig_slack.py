"""Figure 7: CPU microseconds per streamed token in a Slack bot process, everything included.

Figure 3's measurement for the Slack adapter (tools.bench.slack_bot): ``time.process_time`` of
the bot process over ``cpu_streams`` conversations whose answers stream for
``cpu_stream_seconds`` (``tokens_per_chunk`` tokens to an SSE chunk), divided by the tokens the
model server streamed. The model server, the fake Slack Web API and Redis are other processes
on the other CPUs. Replies go out as the adapter writes them by default
(``SLACK_STREAM_MODE=update``: a placeholder by chat.postMessage, then chat.update), each write
waiting for the adapter's Redis budgets at its default rates: 50 chat.update per minute per
workspace (Slack's Tier 3) and one write per second per channel. Every conversation is a DM in
a workspace of its own, so each reply may be updated every 1.2 s (in one workspace, 50 updates
a minute would be shared by all of them). The fake's own limits are lifted: the bot's pacing
spaces the writes, and a 429 would still be counted. The details add the edit lag measured as
figure 2 measures it (arrival at the fake − the pacer slot the write was allowed at, after the
ramp and a warm-up), and the chat.update calls.
"""

from __future__ import annotations

from tools.bench.config import BenchConfig
from tools.bench.env import Env
from tools.bench.results import Figure, percentile
from tools.bench.slack_bot import DEFAULT_MODE, SlackLoad, SlackPacing, run_slack_load

TARGET_US = 50.0  # the goal figure 3 has for Telegram in docs/PERFORMANCE.md


async def run(env: Env, cfg: BenchConfig) -> Figure:
    """The whole Slack bot's CPU per token, with the chat.update count and edit lag."""
    pacing = SlackPacing(
        updates_per_minute=cfg.slack_updates_per_minute,
        channel_interval=cfg.slack_channel_interval,
    )
    load = SlackLoad(
        conversations=cfg.cpu_streams,
        stream_seconds=cfg.cpu_stream_seconds,
        token_interval=cfg.token_interval,
        ramp_seconds=cfg.level_ramp_seconds,
        pacing=pacing,
        rtt=cfg.rtt,
        tokens_per_chunk=cfg.tokens_per_chunk,
    )
    result = await run_slack_load(env, load)
    stats = result.platform
    per_token = result.bot_cpu_seconds / result.tokens * 1e6 if result.tokens else float("nan")
    since = result.started + load.ramp_seconds + cfg.level_warmup_seconds
    lags = [lag for lag, at in zip(stats["lags"], stats["lag_at"], strict=True) if at >= since]
    writes, updates = int(stats["writes"]), int(stats["updates"])
    update_interval = 60.0 / pacing.updates_per_minute
    note = (
        f"SLACK_STREAM_MODE={DEFAULT_MODE.value} (the default): chat.postMessage then "
        f"chat.update, paced by the adapter's Redis budgets ({pacing.updates_per_minute:g} "
        f"chat.update/min per workspace, {pacing.channel_interval:g} s per channel); each "
        "conversation a DM in a workspace of its own; the fake Slack's limits lifted"
    )
    if not env.cpus.pinned:
        note += "; bot not pinned: fewer than two CPUs available"
    return Figure(
        7,
        f"Slack: bot CPU per streamed token, everything included "
        f"({cfg.tokens_per_chunk} tokens per chunk)",
        per_token,
        "µs",
        TARGET_US,
        "<=",
        details={
            "conversations": load.conversations,
            "workspaces": load.conversations,
            "tokens": result.tokens,
            "bot_cpu_seconds": result.bot_cpu_seconds,
            "bot_waiting_for_cpu_share": result.bot_wait_seconds / result.wall_seconds,
            "wall_seconds": result.wall_seconds,
            "outcomes": dict(result.outcomes),
            "chat_update_calls": updates,
            "chat_postMessage_calls": int(stats["posts"]),
            "calls": stats["calls"],
            "ratelimited_429": int(stats["flood_429"]),
            "failed_writes": int(stats["errors"]),
            "tokens_per_update": result.tokens / updates if updates else None,
            # Everything the bot did, spread over its writes (not the cost of a write alone).
            "bot_cpu_us_per_write": result.bot_cpu_seconds / writes * 1e6 if writes else None,
            "lag_ms": {
                "p50": percentile(lags, 50) * 1000,
                "p90": percentile(lags, 90) * 1000,
                "p99": percentile(lags, 99) * 1000,
                "max": max(lags, default=float("nan")) * 1000,
            },
            "lag_samples": len(lags),
            "lag_target_ms": cfg.lag_target * 1000,
            "helpers_cpu_utilisation": result.helper_cpu_seconds / result.wall_seconds,
            "stream_mode": DEFAULT_MODE.value,
            "update_interval_per_workspace_s": update_interval,
            "channel_interval_s": pacing.channel_interval,
            "token_interval_s": cfg.token_interval,
            "tokens_per_chunk": cfg.tokens_per_chunk,
            "rtt_s": cfg.rtt,
        },
        note=note,
    )
