"""Start-up failures are one line: what is wrong and what to set; no traceback, no secret.

`parley telegram` and `parley slack` run as real processes against the fakes answering what a
wrong token, a dead port or an unreachable Redis would; the retries of the start-up calls (a 429,
a 5xx) run in-process with a policy that does not sleep.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bots.runtime import Runtime, open_runtime
from bots.slack.app import check_app_token, check_token, web_client
from bots.slack.app import run as run_slack
from bots.slack.settings import SlackSettings
from bots.telegram.app import PHRASES, running
from bots.telegram.settings import TelegramSettings
from core.errors import ConfigError, PlatformError
from core.retry import STARTUP, RetryPolicy
from core.settings import CoreSettings
from tests.fakes.fake_slack import FakeSlack
from tests.fakes.fake_telegram import FakeTelegram
from tests.services import RedisServer, free_port
from tests.support.processes import fleet, start_bot

# Shaped like real credentials, so a leak of any part of them would be seen.
TG_TOKEN = "7012345678:AAHf3x9Kq2LmNpQrStUvWxYz0123456789A"
SLACK_TOKEN = "xoxb-2718281828-3141592653-Zq8Rt5Uv2Wx9Ya6Bc3De0Fg1"
SIGNING_SECRET = "f3a1c9e7b5d2a8c4e6f0b1d3a5c7e9f2"
REDIS_PASSWORD = "Sup3r-Secret-Redis-Passw0rd"
ADMIN = 4242
NO_WAIT = STARTUP.without_sleep()
ATTEMPTS = len(STARTUP.delays) + 1


# -- helpers ---------------------------------------------------------------------------------


def pieces(secret: str, size: int = 10) -> set[str]:
    """Every run of ``size`` characters of a secret: none may show, not even part of it."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def one_clean_line(output: str, secrets: tuple[str, ...]) -> str:
    """The single non-blank line of ``output``, checked for tracebacks and secrets."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    for secret in secrets:
        for piece in pieces(secret):
            assert piece not in output, f"part of a secret leaked: {output}"
    return lines[0]


async def parley_fails(command: str, env: Mapping[str, str], tmp_path: Path) -> tuple[int, str]:
    """Run `parley <command>` until it exits; its exit code and everything on stderr."""
    process = await start_bot(command, env, log_dir=tmp_path / "logs", name=command)
    async with fleet([process]):
        code = await asyncio.wait_for(process.process.wait(), 60)
    return code, process.log()


def closed_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class Waits:
    """A sleep that records how long it was asked to wait and returns at once."""

    seen: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        """Record, do not wait."""
        self.seen.append(seconds)


# -- `parley telegram` as a process ----------------------------------------------------------


@pytest_asyncio.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API, knowing the bot by TG_TOKEN."""
    fake = FakeTelegram(token=TG_TOKEN)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def telegram_env(telegram: FakeTelegram, redis_server: RedisServer, **extra: str) -> dict[str, str]:
    """What an operator sets for `parley telegram` (the model server is not called at start)."""
    return {
        "TELEGRAM_BOT_TOKEN": TG_TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "TELEGRAM_POLL_TIMEOUT": "1",
        "LLM_BASE_URL": f"{closed_url()}/v1",
        "REDIS_URL": redis_server.url,
        **extra,
    }


async def test_a_token_telegram_rejects_is_one_line(
    telegram: FakeTelegram, redis_server: RedisServer, tmp_path: Path
) -> None:
    telegram.fail_next("getMe", 401, "Unauthorized")
    code, output = await parley_fails("telegram", telegram_env(telegram, redis_server), tmp_path)
    line = one_clean_line(output, (TG_TOKEN,))
    assert code == 2
    assert line == (
        "parley: Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized): copy the token from "
        "@BotFather into TELEGRAM_BOT_TOKEN"
    )
    assert len(telegram.calls_to("getMe")) == 1  # a 401 is not retried


async def test_a_token_of_another_bot_is_one_line(
    telegram: FakeTelegram, redis_server: RedisServer, tmp_path: Path
) -> None:
    other = "7012345678:BBHf3x9Kq2LmNpQrStUvWxYz0123456789B"  # the fake answers 401 itself
    env = telegram_env(telegram, redis_server, TELEGRAM_BOT_TOKEN=other)
    code, output = await parley_fails("telegram", env, tmp_path)
    line = one_clean_line(output, (other,))
    assert code == 2
    assert "Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized)" in line


async def test_a_malformed_token_is_one_line(
    telegram: FakeTelegram, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = telegram_env(telegram, redis_server, TELEGRAM_BOT_TOKEN="not-a-token")
    code, output = await parley_fails("telegram", env, tmp_path)
    line = one_clean_line(output, ())
    assert code == 2
    assert "not-a-token" not in line
    assert line.startswith("parley: invalid configuration: TELEGRAM_BOT_TOKEN:")
    assert "@BotFather" in line
    assert not telegram.calls  # caught before any request


async def test_a_token_telegram_does_not_know_the_shape_of_is_one_line(
    telegram: FakeTelegram, redis_server: RedisServer, tmp_path: Path
) -> None:
    telegram.fail_next("getMe", 404, "Not Found")  # Telegram's answer to a malformed token
    code, output = await parley_fails("telegram", telegram_env(telegram, redis_server), tmp_path)
    line = one_clean_line(output, (TG_TOKEN,))
    assert code == 2
    assert line.startswith("parley: Telegram answered 404 Not Found to TELEGRAM_BOT_TOKEN:")
    assert f"TELEGRAM_API_URL={telegram.url}" in line


async def test_an_unreachable_telegram_is_one_line(
    telegram: FakeTelegram, redis_server: RedisServer, tmp_path: Path
) -> None:
    url = closed_url()
    env = telegram_env(telegram, redis_server, TELEGRAM_API_URL=url)
    code, output = await parley_fails("telegram", env, tmp_path)
    line = one_clean_line(output, (TG_TOKEN,))
    assert code == 2
    assert line.startswith(f"parley: cannot reach Telegram at TELEGRAM_API_URL={url}: ")


async def test_an_unreachable_redis_is_one_line_without_its_password(
    telegram: FakeTelegram, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "TELEGRAM_BOT_TOKEN": TG_TOKEN,
        "TELEGRAM_API_URL": telegram.url,
        "LLM_BASE_URL": f"{closed_url()}/v1",
        "REDIS_URL": f"redis://parley:{REDIS_PASSWORD}@127.0.0.1:{port}/0",
    }
    code, output = await parley_fails("telegram", env, tmp_path)
    line = one_clean_line(output, (TG_TOKEN, REDIS_PASSWORD))
    assert code == 2
    assert line.startswith(f"parley: cannot reach Redis at REDIS_URL: redis://***@127.0.0.1:{port}")


async def test_a_bad_personas_file_is_one_line_naming_the_line(
    telegram: FakeTelegram, redis_server: RedisServer, tmp_path: Path
) -> None:
    personas = tmp_path / "personas.yaml"
    personas.write_text(
        "personas:\n  - id: calm\n    title: Calm\n    temperature: 7\n", encoding="utf-8"
    )
    env = telegram_env(telegram, redis_server, PERSONAS_FILE=str(personas))
    code, output = await parley_fails("telegram", env, tmp_path)
    line = one_clean_line(output, (TG_TOKEN,))
    assert code == 2
    assert line == (
        f"parley: PERSONAS_FILE {personas}, line 4: personas[0].temperature: "
        "Input should be less than or equal to 2"
    )
    assert not telegram.calls_to("getUpdates")  # it never started receiving


# -- `parley slack` as a process -------------------------------------------------------------


@pytest_asyncio.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The fake Slack, knowing the bot by SLACK_TOKEN."""
    fake = FakeSlack(bot_token=SLACK_TOKEN)
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


async def test_a_token_slack_rejects_is_one_line(
    slack: FakeSlack, redis_server: RedisServer, tmp_path: Path
) -> None:
    slack.force_error("auth.test", "invalid_auth")
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "SLACK_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "LLM_BASE_URL": f"{closed_url()}/v1",
        "REDIS_URL": redis_server.url,
    }
    code, output = await parley_fails("slack", env, tmp_path)
    line = one_clean_line(output, (SLACK_TOKEN, SIGNING_SECRET))
    assert code == 2
    assert line.startswith("parley: Slack rejected SLACK_BOT_TOKEN: invalid_auth; copy ")
    assert len(slack.calls_to("auth.test")) == 1  # a rejected token is not retried


# -- Telegram's start-up calls, retried in-process -------------------------------------------


@pytest_asyncio.fixture
async def runtime(redis_server: RedisServer) -> AsyncIterator[Runtime]:
    """Redis and the chat service (the model server is never called here)."""
    settings = CoreSettings(
        llm_base_url=f"{closed_url()}/v1",
        redis_url=redis_server.url,
        admin_ids=f"telegram:{ADMIN}",
    )
    async with open_runtime(settings, phrases=PHRASES) as built:
        yield built


def tg_settings(telegram: FakeTelegram, **values: Any) -> TelegramSettings:
    """Settings for the in-process bot."""
    return TelegramSettings(
        **{
            "telegram_bot_token": TG_TOKEN,
            "telegram_api_url": telegram.url,
            "telegram_poll_timeout": 1,
            **values,
        }
    )


def webhook_settings(telegram: FakeTelegram) -> TelegramSettings:
    """Webhook mode on a free loopback port."""
    port = free_port()
    return tg_settings(
        telegram,
        telegram_webhook_url=f"http://127.0.0.1:{port}/telegram",
        telegram_webhook_secret="webhook-secret",
        telegram_webhook_listen=f"127.0.0.1:{port}",
    )


async def test_set_my_commands_rides_out_a_429_and_a_500(
    telegram: FakeTelegram, runtime: Runtime
) -> None:
    telegram.fail_next("setMyCommands", 429, "Too Many Requests: retry after 3", retry_after=3)
    telegram.fail_next("setMyCommands", 500, "Internal Server Error")
    waits = Waits()
    policy = RetryPolicy(STARTUP.delays, sleep=waits)
    async with running(runtime, tg_settings(telegram), retry=policy) as bot:
        assert bot.application.updater is not None
        assert bot.application.updater.running
    # The public menu on the third try, then its Chinese one and the admin's two at once.
    calls = telegram.calls_to("setMyCommands")
    assert [c.ok for c in calls] == [False, False, True, True, True, True]
    assert "default" in telegram.commands
    # The 429's retry_after (3 s) outweighs the first scheduled delay (1 s); the 500 gets 2 s.
    assert waits.seen == [3.0, 2.0]


async def test_a_menu_that_keeps_failing_is_a_warning_and_the_bot_runs(
    telegram: FakeTelegram, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.fail_next("setMyCommands", 502, "Bad Gateway", times=ATTEMPTS)
    with caplog.at_level(logging.WARNING, logger="bots.telegram.app"):
        async with running(runtime, tg_settings(telegram), retry=NO_WAIT) as bot:
            assert bot.application.updater is not None
            assert bot.application.updater.running
    # Every attempt of the public menu failed; the admin menus were not tried after that.
    assert len(telegram.calls_to("setMyCommands")) == ATTEMPTS
    warnings = [r.getMessage() for r in caplog.records if r.name == "bots.telegram.app"]
    assert warnings == ["running without (some) command menus: Bad Gateway"]
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_menu_telegram_refuses_is_not_retried(
    telegram: FakeTelegram, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.fail_next("setMyCommands", 400, "Bad Request: BOT_COMMAND_INVALID")
    with caplog.at_level(logging.WARNING, logger="bots.telegram.app"):
        async with running(runtime, tg_settings(telegram), retry=NO_WAIT) as bot:
            assert bot.application.updater is not None
            assert bot.application.updater.running
    assert len(telegram.calls_to("setMyCommands")) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "bots.telegram.app"]
    assert warnings == ["running without (some) command menus: Bot_command_invalid"]


async def test_set_webhook_rides_out_a_502(telegram: FakeTelegram, runtime: Runtime) -> None:
    telegram.fail_next("setWebhook", 502, "Bad Gateway")
    async with running(runtime, webhook_settings(telegram), retry=NO_WAIT):
        assert telegram.webhook is not None
    assert [c.ok for c in telegram.calls_to("setWebhook")] == [False, True]


async def test_set_webhook_that_keeps_failing_stops_with_one_line(
    telegram: FakeTelegram, runtime: Runtime
) -> None:
    telegram.fail_next("setWebhook", 502, "Bad Gateway", times=ATTEMPTS)
    with pytest.raises(PlatformError) as failure:
        async with running(runtime, webhook_settings(telegram), retry=NO_WAIT):
            pass
    message = str(failure.value)
    assert "\n" not in message
    assert message.startswith("Telegram kept failing setWebhook for TELEGRAM_WEBHOOK_URL=")
    assert len(telegram.calls_to("setWebhook")) == ATTEMPTS


async def test_a_webhook_telegram_refuses_is_not_retried(
    telegram: FakeTelegram, runtime: Runtime
) -> None:
    telegram.fail_next("setWebhook", 400, "Bad Request: bad webhook: IP address is reserved")
    with pytest.raises(ConfigError, match=r"Telegram refused TELEGRAM_WEBHOOK_URL=\S+: Bad web"):
        async with running(runtime, webhook_settings(telegram), retry=NO_WAIT):
            pass
    assert len(telegram.calls_to("setWebhook")) == 1


async def test_a_webhook_port_in_use_is_one_line(telegram: FakeTelegram, runtime: Runtime) -> None:
    settings = webhook_settings(telegram)
    with socket.socket() as taken:
        taken.bind(settings.listen)
        taken.listen()
        with pytest.raises(ConfigError, match=r"^cannot listen on TELEGRAM_WEBHOOK_LISTEN=127"):
            async with running(runtime, settings, retry=NO_WAIT):
                pass
    assert not telegram.calls_to("setWebhook")


async def test_get_me_rides_out_a_502_but_not_a_401(
    telegram: FakeTelegram, runtime: Runtime
) -> None:
    telegram.fail_next("getMe", 502, "Bad Gateway")
    async with running(runtime, tg_settings(telegram), retry=NO_WAIT):
        pass
    assert [c.ok for c in telegram.calls_to("getMe")] == [False, True]
    telegram.calls.clear()
    telegram.fail_next("getMe", 401, "Unauthorized")
    with pytest.raises(ConfigError, match=r"401 Unauthorized") as failure:
        async with running(runtime, tg_settings(telegram), retry=NO_WAIT):
            pass
    assert TG_TOKEN.partition(":")[2] not in str(failure.value)
    assert len(telegram.calls_to("getMe")) == 1


async def test_a_flood_wait_longer_than_the_whole_schedule_is_not_sat_through(
    telegram: FakeTelegram, runtime: Runtime
) -> None:
    telegram.fail_next("setWebhook", 429, "Too Many Requests: retry after 3600", retry_after=3600)
    waits = Waits()
    with pytest.raises(PlatformError, match=r"flood control, retry after 3600 s"):
        async with running(
            runtime, webhook_settings(telegram), retry=RetryPolicy(STARTUP.delays, sleep=waits)
        ):
            pass
    assert waits.seen == []
    assert len(telegram.calls_to("setWebhook")) == 1


# -- Slack's start-up calls, retried in-process ----------------------------------------------


def slack_settings(slack: FakeSlack, **values: Any) -> SlackSettings:
    """Settings pointing the Web API client at the fake."""
    return SlackSettings(
        **{
            "slack_bot_token": SLACK_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": slack.api_url,
            **values,
        }
    )


async def test_auth_test_rides_out_an_outage_and_a_ratelimit(slack: FakeSlack) -> None:
    slack.force_error("auth.test", "ratelimited", status=429)  # with Retry-After: 1
    slack.force_error("auth.test", "internal_error", status=500)
    waits = Waits()
    await check_token(web_client(slack_settings(slack)), retry=RetryPolicy((0.1, 2.0), waits))
    assert [c.ok for c in slack.calls_to("auth.test")] == [False, False, True]
    assert waits.seen == [1.0, 2.0]  # the 429's Retry-After (1 s) over the scheduled 0.1 s


async def test_auth_test_that_keeps_failing_is_one_line(slack: FakeSlack) -> None:
    slack.force_error("auth.test", "service_unavailable", times=ATTEMPTS, status=503)
    with pytest.raises(PlatformError) as failure:
        await check_token(web_client(slack_settings(slack)), retry=NO_WAIT)
    assert str(failure.value) == (
        f"Slack at SLACK_API_URL={slack.api_url} kept failing (service_unavailable): "
        "try again later"
    )
    assert len(slack.calls_to("auth.test")) == ATTEMPTS


async def test_an_unreachable_slack_is_one_line_after_the_retries() -> None:
    url = f"{closed_url()}/api/"
    settings = SlackSettings(
        slack_bot_token=SLACK_TOKEN, slack_signing_secret=SIGNING_SECRET, slack_api_url=url
    )
    with pytest.raises(ConfigError, match=r"^cannot reach Slack at SLACK_API_URL=\S+: \w+"):
        await check_token(web_client(settings), retry=NO_WAIT)


async def test_apps_connections_open_rides_out_an_outage(slack: FakeSlack) -> None:
    slack.force_error("apps.connections.open", "internal_error", status=500)
    client = web_client(slack_settings(slack))
    await check_app_token(client, slack.app_token, retry=NO_WAIT)
    assert [c.ok for c in slack.calls_to("apps.connections.open")] == [False, True]
    with pytest.raises(ConfigError, match="Slack rejected SLACK_APP_TOKEN: invalid_auth; copy"):
        await check_app_token(client, "xapp-wrong", retry=NO_WAIT)
    assert len(slack.calls_to("apps.connections.open")) == 3


async def test_a_slack_port_in_use_is_one_line(slack: FakeSlack, runtime: Runtime) -> None:
    port = free_port()
    settings = slack_settings(slack, slack_http_listen=f"127.0.0.1:{port}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        with pytest.raises(ConfigError, match=r"^cannot listen on SLACK_HTTP_LISTEN=127"):
            await run_slack(runtime, settings, retry=NO_WAIT)
