"""Figure 4: 429s the bot earns at 200 concurrent chats from a platform enforcing Telegram's rules.

The fake Bot API enforces Telegram's flood limits (about one write per second per chat with a
small burst, 20 per minute in a group, 30 per second for the whole bot) and answers 429 with
``retry_after`` beyond them. The bot runs with its production budgets (``bots.telegram.pacing``
on Redis). A quarter of the chats are supergroups. Count = 429s the fake answered.
"""

from __future__ import annotations

from tools.bench.bot import Pacing
from tools.bench.config import BenchConfig
from tools.bench.env import Env
from tools.bench.load import Load, run_load
from tools.bench.results import Figure


async def run(env: Env, cfg: BenchConfig) -> Figure:
    """One run with every limit on."""
    scale = cfg.rule_scale
    load = Load(
        conversations=cfg.rl_chats,
        groups=cfg.rl_groups,
        stream_seconds=cfg.rl_stream_seconds,
        token_interval=cfg.token_interval,
        ramp_seconds=cfg.level_ramp_seconds,
        pacing=Pacing(
            chat_interval=cfg.chat_interval,
            group_per_minute=20.0 / scale,
            bot_per_second=30.0 / scale,
        ),
        rules="telegram",
        rtt=cfg.rtt,
        rule_scale=scale,
        tokens_per_chunk=cfg.tokens_per_chunk,
    )
    result = await run_load(env, load)
    stats = result.platform
    return Figure(
        4,
        f"429s at {cfg.rl_chats} concurrent chats",
        stats["flood_429"],
        "429s",
        0,
        "<=",
        details={
            "chats": cfg.rl_chats,
            "of_which_groups": cfg.rl_groups,
            "writes": stats["writes"],
            "calls": stats["calls"],
            "refusals": stats["refusals"],
            "429_by_rule": stats["flood_by_rule"],
            "tokens_per_chunk": cfg.tokens_per_chunk,
            "outcomes": dict(result.outcomes),
            "wall_seconds": result.wall_seconds,
            "bot_waiting_for_cpu_share": result.bot_wait_seconds / result.wall_seconds,
            "rules": "per chat ~1/s (burst 3), groups 20/min, bot 30/s",
        },
    )
