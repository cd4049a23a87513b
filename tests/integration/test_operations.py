"""Operations: access control, quotas, audit, usage stats, metrics, shutdown, `parley admin`."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from bots.logs import RedactingFilter, setup_logging
from bots.ops import ops_listener
from bots.runtime import Runtime, open_runtime
from core.access import AccessMode
from core.commands import CommandName
from core.conversation import ConversationKey, IncomingMessage
from core.results import Outcome
from core.settings import CoreSettings
from core.sink import SinkLimits
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.fakes.fixtures import FakeVLLMFactory
from tests.integration.command_scenarios import one_quota_minute
from tests.services import RedisServer
from tests.support import commands
from tests.support.sinks import RecordingSink
from tests.support.timing import eventually

RuntimeFactory = Callable[..., AbstractAsyncContextManager[Runtime]]


def msg(user: str, text: str = "hi", *, chat: str = "c1") -> IncomingMessage:
    """A Telegram-like message."""
    return IncomingMessage(ConversationKey("telegram", chat, user), text, user)


BOSS = ConversationKey("telegram", "c1", "boss")


def sink() -> RecordingSink:
    """Fast pacing."""
    return RecordingSink(SinkLimits(max_length=4000, min_interval=0.01))


def settings_for(fake: FakeVLLM, redis_server: RedisServer, **overrides: Any) -> CoreSettings:
    """Core settings against the fakes."""
    return CoreSettings(
        _env_file=None,
        llm_base_url=fake.base_url,
        redis_url=redis_server.url,
        llm_retries=0,
        **overrides,
    )


@pytest_asyncio.fixture
async def runtime_for(redis_server: RedisServer, redis_client: Any) -> RuntimeFactory:
    """Runtimes from the real composition root."""

    def build(fake: FakeVLLM, **overrides: Any) -> AbstractAsyncContextManager[Runtime]:
        return open_runtime(settings_for(fake, redis_server, **overrides))

    return build


async def test_allowlist_refuses_politely_once_and_admins_manage_it(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory
) -> None:
    async with runtime_for(fake_vllm, access=AccessMode.ALLOWLIST, admin_ids="telegram:boss") as rt:
        first, second = sink(), sink()
        assert (await rt.service.handle(msg("stranger"), first)).outcome is Outcome.REFUSED
        assert (await rt.service.handle(msg("stranger"), second)).outcome is Outcome.REFUSED
        assert "private" in first.texts()[0]
        assert second.texts() == []  # told once, not on every message
        assert (await rt.service.handle(msg("boss"), sink())).outcome is Outcome.ANSWERED
        await commands.run(rt.service, CommandName.ALLOW, BOSS, "telegram:chat:c1")  # a chat
        assert (await rt.service.handle(msg("stranger"), sink())).outcome is Outcome.ANSWERED
        denied = await commands.run(rt.service, CommandName.DENY, BOSS, "stranger")
        assert denied.text == "Denied: `telegram:stranger`"  # deny beats the chat's allow
        assert (await rt.service.handle(msg("stranger"), sink())).outcome is Outcome.REFUSED
    assert len(fake_vllm.requests) == 2


async def test_message_quota_holds_across_two_processes(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory
) -> None:
    async with (
        runtime_for(fake_vllm, quota_messages_per_minute=3, admin_ids="telegram:boss") as one,
        runtime_for(fake_vllm, quota_messages_per_minute=3, admin_ids="telegram:boss") as two,
    ):
        await one_quota_minute()
        outcomes, told = [], []
        for n in range(5):
            replica = (one, two)[n % 2]
            out = sink()
            outcomes.append((await replica.service.handle(msg("ada", f"m{n}"), out)).outcome)
            told += out.texts()
        assert outcomes[:3] == [Outcome.ANSWERED] * 3
        assert outcomes[3:] == [Outcome.REFUSED] * 2
        refusals = [t for t in told if "You can continue in" in t]
        assert len(refusals) == 1  # told once a minute, not on every refused message
        for _ in range(5):
            admin = await one.service.handle(msg("boss", "x"), sink())
            assert admin.outcome is Outcome.ANSWERED  # admins are exempt


async def test_daily_token_quota(fake_vllm: FakeVLLM, runtime_for: RuntimeFactory) -> None:
    async with runtime_for(fake_vllm, quota_tokens_per_day=20) as rt:
        assert (await rt.service.handle(msg("ada", "hello"), sink())).outcome is Outcome.ANSWERED
        out = sink()
        assert (await rt.service.handle(msg("ada", "again"), out)).outcome is Outcome.REFUSED
        assert "tokens per day" in out.texts()[0]
        assert rt.service.runner.quotas is not None
        usage = await rt.service.runner.quotas.usage("telegram", "ada")
        assert usage.tokens_today >= 20
        mine = await commands.run(rt.service, CommandName.USAGE, msg("ada").key)
        assert f"Tokens today (UTC): {usage.tokens_today:,}" in mine.text
        assert "0 of 20 tokens left today" in mine.text


async def test_usage_stats_and_audit(fake_vllm: FakeVLLM, runtime_for: RuntimeFactory) -> None:
    async with runtime_for(fake_vllm, admin_ids="telegram:boss") as rt:
        for user in ("ada", "bob", "ada"):
            await rt.service.handle(msg(user, "hello there"), sink())
        usage = rt.service.commands.operations.usage
        assert usage is not None
        report = await usage.report()
        assert report.today["telegram"].users == 2
        assert report.today["telegram"].turns == 3
        assert report.total["telegram"].tokens_in > 0
        assert report.total["telegram"].tokens_out > 0
        stats = await commands.run(rt.service, CommandName.STATS, BOSS)
        assert "• Telegram: 2 users, 3 turns" in stats.text
        reset = await commands.run(rt.service, CommandName.RESET_USER, BOSS, "telegram:ada")
        assert reset.text == "Removed 1 conversation of user ada."
        await commands.run(rt.service, CommandName.FORGET, msg("bob").key)
        audit_log = rt.service.commands.operations.audit_log
        assert audit_log is not None
        entries = await audit_log.recent()
    assert [(e.actor, e.action, e.target) for e in entries] == [
        ("telegram:bob", "forget", "telegram:bob"),
        ("telegram:boss", "reset-user", "telegram:ada"),
    ]


async def test_metrics_move_during_a_streamed_reply(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.01)
    fake.script(Reply("thinking " * 10, "word " * 40))
    async with (
        runtime_for(fake, metrics_listen="127.0.0.1:0") as rt,
        ops_listener(rt, "127.0.0.1:0") as port,
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{port}"
        task = asyncio.create_task(rt.service.handle(msg("ada"), sink()))
        during = ""

        async def streaming() -> bool:
            """Scrape until the reply is seen streaming (or is over: then the check fails)."""
            nonlocal during
            during = await (await http.get(f"{base}/metrics")).text()
            return "parley_active_streams 1.0" in during or task.done()

        await eventually(streaming, what="a scrape during the reply")
        await task
        after = await (await http.get(f"{base}/metrics")).text()
        health = await http.get(f"{base}/healthz")
        ready = await http.get(f"{base}/readyz")
        assert health.status == 200
        assert ready.status == 200
        await fake.stop()
        not_ready = await http.get(f"{base}/readyz")
        assert not_ready.status == 503
        assert (await not_ready.json())["model"].startswith("unreachable")
    assert "parley_active_streams 1.0" in during
    assert "parley_active_streams 0.0" in after
    assert 'parley_turns_total{outcome="answered"} 1.0' in after
    assert "parley_time_to_first_token_seconds_count 1.0" in after
    assert "parley_time_to_first_visible_answer_seconds_count 1.0" in after
    assert 'parley_message_writes_total{result="sent"}' in after
    skipped = [ln for ln in after.splitlines() if 'result="skipped"' in ln and "total" in ln]
    assert float(skipped[0].split()[-1]) > 0  # latest text wins: interim edits were skipped


async def test_graceful_shutdown_lets_replies_finish_or_ends_them(
    fake_vllm_factory: FakeVLLMFactory, runtime_for: RuntimeFactory
) -> None:
    fake = await fake_vllm_factory(token_interval=0.01)
    fake.script(Reply("r", "short answer"), Reply("r", "long " * 500))
    async with runtime_for(fake) as rt:
        quick = asyncio.create_task(rt.service.handle(msg("ada"), sink()))
        await eventually(lambda: len(fake.requests) == 1, what="the quick reply to start")
        await rt.service.shutdown(grace_seconds=5)
        assert (await quick).outcome is Outcome.ANSWERED  # finished within the grace period
        late = sink()
        assert (await rt.service.handle(msg("bob"), late)).outcome is Outcome.REFUSED
        assert "restarting" in late.texts()[0]
    async with runtime_for(fake) as rt:
        out = sink()
        slow = asyncio.create_task(rt.service.handle(msg("eve"), out))
        await eventually(lambda: bool(out.writes), what="the long reply to start")
        await rt.service.shutdown(grace_seconds=0.2)
        result = await slow
        assert result.outcome is Outcome.INTERRUPTED
        assert "Parley is restarting" in out.texts()[-1]
        assert await rt.service.runner.store.load(ConversationKey("telegram", "c1", "eve")) == []
        assert not await rt.service.runner.turns.busy(ConversationKey("telegram", "c1", "eve"))


async def test_admin_cli_against_data_written_by_a_bot(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with runtime_for(fake_vllm) as rt:
        await rt.service.handle(msg("ada"), sink())
        await rt.service.handle(msg("bob", chat="c2"), sink())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "REDIS_"))}
    env.update(REDIS_URL=redis_server.url, LLM_BASE_URL=fake_vllm.base_url, DATA_DIR=str(tmp_path))

    async def admin(*args: str) -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bots", "admin", *args,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await process.communicate()
        return process.returncode or 0, out.decode() + err.decode()

    code, out = await admin("stats")
    assert code == 0
    assert "Conversations: 2 (4 messages)" in out
    assert "Telegram: 2 users, 2 turns" in out
    removed = (await admin("reset", "--user", "telegram:ada"))[1]
    assert removed.strip() == "Removed 1 conversation of user ada."
    code, out = await admin("reset", "--all")
    assert code == 1
    assert "--yes" in out
    assert (
        (await admin("reset", "--all", "--yes"))[1].strip().endswith("Deleted all 1 conversation.")
    )
    assert (await admin("allow", "slack:team:T1"))[0] == 0
    code, out = await admin("deny", "nonsense")
    assert code == 1
    assert "not an access entry" in out
    assert "Traceback" not in out
    code, out = await admin("audit")
    actions = [line.split()[3] for line in out.splitlines()[2:]]
    assert actions == ["allow", "reset-all", "reset-user"]


async def test_admin_persona_counts_the_chats_that_picked_each(
    fake_vllm: FakeVLLM, runtime_for: RuntimeFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    personas = str(Path(__file__).parents[1] / "support" / "personas.yaml")
    async with runtime_for(fake_vllm, personas_file=personas) as rt:
        for user in ("ada", "bob"):
            key = ConversationKey("telegram", user, user)
            await commands.run(rt.service, CommandName.PERSONA, key, "concise")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "REDIS_"))}
    env.update(REDIS_URL=redis_server.url, DATA_DIR=str(tmp_path), PERSONAS_FILE=personas)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "admin", "persona",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err
    lines = out.decode().splitlines()
    assert "• assistant (default) — Assistant: 0 chats" in lines
    assert "• concise — Concise: 2 chats" in lines


def test_tokens_and_secrets_never_reach_the_logs(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    secret = "signing-secret-value"
    redactor = setup_logging([secret])
    log = logging.getLogger("httpx")
    log.warning("HTTP Request: POST https://api.telegram.org/bot%s/sendMessage", token)
    logging.getLogger("parley").error("bad signature %s for xoxb-1234-5678-abcdef", secret)
    try:
        raise RuntimeError(f"boom with {token}")
    except RuntimeError:
        logging.getLogger("parley").exception("failed")
    err = capsys.readouterr().err
    assert token not in err
    assert secret not in err
    assert "xoxb-1234" not in err
    assert "redis://user:hunter2@" not in RedactingFilter().redact("redis://user:hunter2@host")
    assert "bot***/sendMessage" in err
    logging.getLogger().handlers.clear()
    assert isinstance(redactor, RedactingFilter)
