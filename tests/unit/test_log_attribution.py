"""The log checks count the bot's records only: a fake server's complaints are not its errors.

A busy machine once failed `make test` because the fake Bot API logged "Connection lost" (a
request the bot's HTTP client gave up on) and the test counted it as the bot's stack trace.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.fakes.fake_telegram import FakeTelegram
from tests.support.logs import ROOT, errors_logged, is_bots, unhandled_logged
from tests.support.timing import eventually


def record(
    name: str, message: str, *, level: int = logging.ERROR, traceback: str | None = None
) -> logging.LogRecord:
    """A log record as ``name`` would emit it, optionally with a formatted traceback."""
    made = logging.LogRecord(name, level, __file__, 1, message, None, None)
    made.exc_text = traceback
    return made


def traceback_through(*files: str) -> str:
    """A traceback whose frames are in ``files`` (paths under the checkout)."""
    frames = "".join(f'  File "{ROOT}/{file}", line 1, in f\n    x()\n' for file in files)
    return f"Traceback (most recent call last):\n{frames}ConnectionResetError: Connection lost"


async def test_a_fake_servers_connection_lost_is_not_the_bots_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The very record of the flake: a client leaves mid-request; the fake logs it, apart."""
    caplog.set_level(logging.INFO)
    fake = FakeTelegram()
    await fake.start()
    try:
        host, port = fake.url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /bot{fake.token}/sendMessage HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            '{"chat_id": 1, "text": "'.encode()
        )
        await writer.drain()
        await eventually(lambda: _dispatched(fake), what="the request to reach the handler")
        await asyncio.sleep(0.05)  # a few loop turns: the handler now waits for the body
        writer.transport.abort()  # the client gives up before the body is whole
        await eventually(
            lambda: any(r.exc_info for r in caplog.records),
            what="the fake to log the dropped request",
        )
    finally:
        await fake.stop()
    (logged,) = [r for r in caplog.records if r.exc_info]
    assert logged.exc_info is not None
    assert str(logged.exc_info[1]) == "Connection lost"
    assert logged.name == "tests.fakes.telegram"  # not aiohttp.server, which the bot's use
    assert not is_bots(logged)
    assert errors_logged(caplog.records) == []
    assert unhandled_logged(caplog.records) == []


def _dispatched(fake: FakeTelegram) -> bool:
    """Whether the fake's server has parsed a request's headers and started its handler."""
    runner = fake._runner
    server = runner.server if runner is not None else None
    return server is not None and server.requests_count > 0


def test_the_bots_own_records_count() -> None:
    bot_errors = [
        record("bots.telegram.handlers", "a reply failed"),
        record("core.service", "turn failed", level=logging.WARNING, traceback="Traceback …"),
        record("telegram.ext.Application", "No error handlers are registered"),
        record("slack_bolt.App", "Failed to run listener"),
        record("openai._base_client", "request failed"),
        record("redis.asyncio.client", "connection error"),
        record("parley", "could not start"),
    ]
    assert len(errors_logged(bot_errors)) == len(bot_errors)
    assert errors_logged([record("core.pacing", "slow down", level=logging.WARNING)]) == []


def test_the_fakes_and_other_libraries_do_not() -> None:
    fakes = [
        record(
            "aiohttp.server",
            "Error handling request",
            traceback=traceback_through("tests/fakes/fake_telegram.py"),
        ),
        record("tests.fakes.slack", "Error handling request", traceback="Traceback …"),
        record("tests.fakes.vllm", "Error handling request", traceback="Traceback …"),
        record("aiohttp.access", "GET /health 500"),
        record("aiohttp.web", "something"),
        record("hpack.hpack", "some decoding trouble"),
    ]
    assert errors_logged(fakes) == []
    assert unhandled_logged(fakes) == []


def test_aiohttp_server_records_count_when_a_bot_handler_failed() -> None:
    """The bot's webhook and Slack servers are aiohttp servers: their handlers' crashes count."""
    crashed = record(
        "aiohttp.server",
        "Error handling request from 127.0.0.1",
        traceback=traceback_through("bots/telegram/webhook.py", "core/service.py"),
    )
    assert errors_logged([crashed]) == [f"ERROR aiohttp.server: {crashed.getMessage()}"]


def test_asyncio_reports_count_unless_they_point_only_at_test_code() -> None:
    lost_bot_task = record(
        "asyncio",
        "Task exception was never retrieved\nfuture: <Task finished coro=<ChatService.handle()>>",
        traceback=traceback_through("core/service.py"),
    )
    lost_fake_task = record(
        "asyncio",
        "Task exception was never retrieved\nfuture: <Task finished coro=<FakeTelegram._push()>>",
        traceback=traceback_through("tests/fakes/fake_telegram.py"),
    )
    unclosed = record("asyncio", "Unclosed client session\nclient_session: <ClientSession>")
    assert len(unhandled_logged([lost_bot_task, unclosed])) == 2
    assert unhandled_logged([lost_fake_task]) == []
