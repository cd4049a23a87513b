"""The model server killed mid-stream under a real `parley telegram` process.

The in-process suite kills the server 50 times; here a few kills go through the whole
product as operators run it (a process configured by environment, polling the fake Bot API),
checking what users see in Telegram and that the process log stays free of tracebacks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from core.conversation import ConversationKey
from core.errors import LLMUnavailable
from tests.chaos.invariants import check_history, echo, load_history, lock_keys, questions
from tests.chaos.support import FILLER, quick_thought
from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.telegram.conftest import SCALE
from tests.services import RedisServer
from tests.support.processes import fleet, start_bot

KILLS = 5
USERS = 3


@pytest.mark.timeout(120)
async def test_model_killed_mid_stream_under_a_bot_process(
    telegram: FakeTelegram,
    vllm: FakeVLLM,
    redis_server: RedisServer,
    redis: aioredis.Redis,
    tmp_path: Path,
) -> None:
    vllm.token_interval = 0.005
    vllm.responder = quick_thought
    env = {
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_POLL_TIMEOUT": "1",
        "TELEGRAM_CHAT_INTERVAL": str(1.0 * SCALE),
        "TELEGRAM_GROUP_MESSAGES_PER_MINUTE": str(20 / SCALE),
        "TELEGRAM_BOT_MESSAGES_PER_SECOND": str(30 / SCALE),
        "LLM_BASE_URL": vllm.base_url,
        "REDIS_URL": redis_server.url,
        "QUOTA_MESSAGES_PER_MINUTE": "0",
        "LOCK_LEASE_SECONDS": "3",
        "SHUTDOWN_GRACE_SECONDS": "3",
    }
    bot = await start_bot("telegram", env, log_dir=tmp_path, name="telegram")
    unavailable = LLMUnavailable.user_message
    users = [telegram.new_user(f"U{n}") for n in range(USERS)]
    async with fleet([bot]):
        await telegram.wait_for(
            lambda: bool(telegram.calls_to("getUpdates")), timeout=60, what="polling"
        )
        for round_ in range(KILLS):
            asked = {u.id: f"round {round_} user {u.id} {FILLER}" for u in users}
            for user in users:
                await telegram.private_text(user, asked[user.id])

            def streaming(round_: int = round_) -> bool:
                return all(
                    len(telegram.bot_texts(u.id)) == 2 * round_ + 1
                    and telegram.bot_texts(u.id)[-1].startswith(f"You said: round {round_}")
                    for u in users
                )

            await telegram.wait_for(streaming, timeout=30, what="answers streaming")
            await vllm.stop()
            await vllm.restart()
            await telegram.wait_for(
                lambda: all(telegram.bot_texts(u.id)[-1].endswith(unavailable) for u in users),
                timeout=30,
                what="the error under each cut answer",
            )
            for user in users:
                shown = telegram.bot_texts(user.id)[-1]
                partial = shown.removesuffix(unavailable).strip()
                assert echo(asked[user.id]).startswith(partial), shown
                assert partial != echo(asked[user.id])
                await telegram.private_text(user, f"after kill {round_}")
            await telegram.wait_for(
                lambda round_=round_: all(  # type: ignore[misc]
                    telegram.bot_texts(u.id)[-1] == echo(f"after kill {round_}") for u in users
                ),
                timeout=30,
                what="answers after the restart",
            )
        code = await bot.stop()
    assert code == 0, bot.log()[-3000:]
    assert bot.problems() == [], bot.log()[-5000:]
    for user in users:
        key = ConversationKey("telegram", str(user.id), str(user.id))
        history = await load_history(redis, key)
        assert check_history(str(key), history).problems == []
        assert questions(history) == [f"after kill {r}" for r in range(KILLS)]
        assert len(telegram.bot_texts(user.id)) == 2 * KILLS  # no duplicate or stray message
    assert await lock_keys(redis) == []
    assert vllm.killed >= KILLS * USERS
