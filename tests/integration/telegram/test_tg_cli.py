"""`parley telegram` as an operator runs it: a process configured by environment variables."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import redis.asyncio as aioredis

from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM
from tests.services import RedisServer

ROOT = Path(__file__).resolve().parents[3]


async def test_parley_telegram_answers_and_stops_on_sigterm(
    telegram: FakeTelegram, vllm: FakeVLLM, redis_server: RedisServer, redis: aioredis.Redis
) -> None:
    # ``redis`` empties the session's Redis: an earlier test's quota counters or chat settings
    # for a user id this fake hands out again must not change the answer.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(ROOT)),
        "TELEGRAM_BOT_TOKEN": telegram.token,
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_POLL_TIMEOUT": "1",
        "LLM_BASE_URL": vllm.base_url,
        "REDIS_URL": redis_server.url,
        "PYTHONUNBUFFERED": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "telegram",
        cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await telegram.wait_for(
            lambda: bool(telegram.calls_to("getUpdates")), timeout=60, what="polling to start"
        )
        alice = telegram.new_user()
        await telegram.private_text(alice, "hello from a real process")
        await telegram.wait_for(
            lambda: telegram.bot_texts(alice.id) == ["You said: hello from a real process"],
            timeout=30,
            what="the answer",
        )
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(process.communicate(), 30)
    log = output.decode(errors="replace")
    assert process.returncode == 0, log
    assert telegram.token not in log
    assert telegram.token.split(":")[1] not in log
