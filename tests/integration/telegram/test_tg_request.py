"""The aiohttp Bot API request keeps python-telegram-bot's error meanings over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from aiohttp import web
from telegram import Bot, MessageEntity
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut

from bots.telegram.request import AiohttpRequest
from tests.services import free_port

TOKEN = "123456789:AAF-fake-token_for_tests"
ME = {"id": 123456789, "is_bot": True, "first_name": "Parley", "username": "parley_bot"}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest_asyncio.fixture
async def api() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Starts a Bot API stand-in answering every method with one handler; yields its base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        async def route(request: web.Request) -> web.StreamResponse:
            if request.path.endswith("/getMe"):  # Bot.initialize asks who it is
                return web.json_response({"ok": True, "result": ME})
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", route)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        return f"http://127.0.0.1:{port}/bot"

    yield start
    for runner in runners:
        await runner.cleanup()


def bot(base_url: str, *, read_timeout: float = 1.0) -> Bot:
    """A Bot on the aiohttp request with short timeouts."""
    request = AiohttpRequest(connect_timeout=1.0, read_timeout=read_timeout, write_timeout=1.0)
    return Bot(TOKEN, base_url=base_url, request=request)


async def test_a_call_sends_its_parameters_as_json_and_reads_the_answer(
    api: Callable[[Handler], Awaitable[str]],
) -> None:
    seen: list[tuple[str, object]] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append((request.content_type, await request.json()))
        return web.json_response({"ok": True, "result": True})

    async with bot(await api(answer)) as client:
        assert await client.send_chat_action(42, "typing") is True
        entity = MessageEntity(MessageEntity.BOLD, 0, 2)
        await client.edit_message_text("hé 😀 & <b>", chat_id=-100, message_id=7, entities=[entity])
    assert seen[0] == ("application/json", {"chat_id": 42, "action": "typing"})
    # Nested values travel as JSON values, text exactly as written.
    assert seen[1] == (
        "application/json",
        {
            "chat_id": -100,
            "message_id": 7,
            "text": "hé 😀 & <b>",
            "entities": [{"type": "bold", "offset": 0, "length": 2}],
        },
    )


async def test_nothing_listening_is_a_network_error() -> None:
    client = bot(f"http://127.0.0.1:{free_port()}/bot")
    try:
        with pytest.raises(NetworkError) as caught:
            await client.initialize()  # getMe
    finally:
        await client.shutdown()
    assert not isinstance(caught.value, TimedOut)


async def test_an_api_that_does_not_answer_times_out(
    api: Callable[[Handler], Awaitable[str]],
) -> None:
    release = asyncio.Event()

    async def silent(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True, "result": True})

    async with bot(await api(silent), read_timeout=0.3) as client:
        try:
            with pytest.raises(TimedOut):
                await client.send_chat_action(42, "typing")
        finally:
            release.set()


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3",
               "parameters": {"retry_after": 3}}, RetryAfter),
        (400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"},
         BadRequest),
    ],
)  # fmt: skip
async def test_refusals_keep_their_telegram_meaning(
    api: Callable[[Handler], Awaitable[str]],
    status: int,
    body: dict[str, object],
    error: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # as bots.telegram.app opts in

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    async with bot(await api(refuse)) as client:
        with pytest.raises(error):
            await client.send_chat_action(42, "typing")
