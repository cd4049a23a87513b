"""The fake Bot API itself: Telegram's rules and exact error bodies, so other tests can trust it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.fakes.fake_telegram import NOT_MODIFIED, FakeTelegram, RateRules, User
from tests.support.timing import patient


@pytest_asyncio.fixture
async def api() -> AsyncIterator[tuple[FakeTelegram, aiohttp.ClientSession]]:
    fake = FakeTelegram(rules=RateRules(time_scale=1.0))
    await fake.start()
    async with aiohttp.ClientSession() as session:
        try:
            yield fake, session
        finally:
            await fake.stop()


async def call(
    api: tuple[FakeTelegram, aiohttp.ClientSession],
    method: str,
    token: str | None = None,
    **params: Any,
) -> tuple[int, dict[str, Any]]:
    fake, session = api
    url = f"{fake.url}/bot{token or fake.token}/{method}"
    async with session.post(url, json=params) as response:
        return response.status, await response.json()


def bad(description: str) -> dict[str, Any]:
    return {"ok": False, "error_code": 400, "description": description}


async def test_token_is_checked(api: tuple[FakeTelegram, aiohttp.ClientSession]) -> None:
    assert await call(api, "getMe", token="1:wrong") == (
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
    )
    assert (await call(api, "getMe", token="nonsense"))[0] == 404
    assert (await call(api, "noSuchMethod"))[0] == 404
    status, body = await call(api, "getMe")
    assert status == 200
    assert body["result"]["username"] == "parley_test_bot"


async def test_length_is_counted_in_utf16_after_entities(
    api: tuple[FakeTelegram, aiohttp.ClientSession],
) -> None:
    fake, _ = api
    user = User(7, "Ann")
    fake.private_chat(user)
    assert (await call(api, "sendMessage", chat_id=7, text="😀" * 2048))[0] == 200
    await asyncio.sleep(1.0)
    assert await call(api, "sendMessage", chat_id=7, text="😀" * 2048 + "x") == (
        400,
        bad("Bad Request: message is too long"),
    )
    # Markup-free text plus entities: only the text counts.
    entities = [{"type": "bold", "offset": 0, "length": 4096}]
    assert (await call(api, "sendMessage", chat_id=7, text="a" * 4096, entities=entities))[0] == 200


@pytest.mark.parametrize(
    ("text", "entity"),
    [
        ("hello", {"type": "bold", "offset": 3, "length": 3}),  # past the end
        ("😀x", {"type": "bold", "offset": 1, "length": 2}),  # inside a surrogate pair
        ("hello", {"type": "sparkle", "offset": 0, "length": 1}),
        ("hello", {"type": "text_link", "offset": 0, "length": 1}),  # no url
    ],
)
async def test_entities_must_fit_the_text(
    api: tuple[FakeTelegram, aiohttp.ClientSession], text: str, entity: dict[str, Any]
) -> None:
    api[0].private_chat(User(7, "Ann"))
    status, body = await call(api, "sendMessage", chat_id=7, text=text, entities=[entity])
    assert status == 400
    assert body["description"].startswith("Bad Request: can't parse entities: ")


async def test_overlapping_entities_and_nested_quotes_are_refused(
    api: tuple[FakeTelegram, aiohttp.ClientSession],
) -> None:
    api[0].private_chat(User(7, "Ann"))
    overlap = [
        {"type": "bold", "offset": 0, "length": 3},
        {"type": "italic", "offset": 2, "length": 3},
    ]
    nested = [
        {"type": "blockquote", "offset": 0, "length": 5},
        {"type": "blockquote", "offset": 1, "length": 2},
    ]
    ok = [
        {"type": "bold", "offset": 0, "length": 5},
        {"type": "underline", "offset": 0, "length": 5},
    ]
    for entities, status in ((overlap, 400), (nested, 400), (ok, 200)):
        assert (await call(api, "sendMessage", chat_id=7, text="hello", entities=entities))[
            0
        ] == status
        await asyncio.sleep(1.0)


async def test_edits_follow_telegrams_rules(
    api: tuple[FakeTelegram, aiohttp.ClientSession],
) -> None:
    fake, _ = api
    fake.rules.enabled = False
    user = User(7, "Ann")
    fake.private_chat(user)
    _, sent = await call(api, "sendMessage", chat_id=7, text="  same text \n")
    message_id = sent["result"]["message_id"]
    assert sent["result"]["text"] == "same text"  # Telegram trims whitespace
    assert await call(
        api, "editMessageText", chat_id=7, message_id=message_id, text="same text "
    ) == (
        400,
        bad(NOT_MODIFIED),
    )
    assert NOT_MODIFIED == (
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message"
    )
    status, _ = await call(api, "editMessageText", chat_id=7, message_id=message_id, text="new")
    assert status == 200
    fake.delete_message(7, message_id)
    assert await call(api, "editMessageText", chat_id=7, message_id=message_id, text="newer") == (
        400,
        bad("Bad Request: message to edit not found"),
    )
    assert [v.text for v in fake.state(7).messages[message_id].history] == ["same text", "new"]


class FrozenClock:
    """The fake's clock, stopped: requests that take long on a busy machine refill nothing."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_flood_control_per_private_chat(
    api: tuple[FakeTelegram, aiohttp.ClientSession],
) -> None:
    fake, _ = api
    clock = FrozenClock()
    fake._clock = clock  # the burst is judged at one instant, however slow the calls are
    fake.private_chat(User(7, "Ann"))
    statuses = []
    for i in range(5):
        status, body = await call(api, "sendMessage", chat_id=7, text=f"m{i}")
        statuses.append(status)
    assert statuses == [200, 200, 200, 429, 429]  # a burst of 3, then ~1 per second
    assert body == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    clock.now += 1.0
    assert (await call(api, "sendMessage", chat_id=7, text="later"))[0] == 200


async def test_flood_control_per_group(api: tuple[FakeTelegram, aiohttp.ClientSession]) -> None:
    fake, _ = api
    fake.rules = RateRules(per_chat_window=0.0001, group_window=60.0)
    group = fake.new_group()
    statuses = [
        (await call(api, "sendMessage", chat_id=group.id, text=f"m{i}"))[0] for i in range(21)
    ]
    assert statuses == [200] * 20 + [429]
    assert fake.flood_errors()[0].description.startswith("Too Many Requests: retry after ")


async def test_forced_retry_after(api: tuple[FakeTelegram, aiohttp.ClientSession]) -> None:
    fake, _ = api
    fake.private_chat(User(7, "Ann"))
    fake.force_retry_after(7, 2)
    status, body = await call(api, "sendMessage", chat_id=7, text="x")
    assert (status, body["parameters"]) == (429, {"retry_after": 2})
    assert fake.errors(code=429)[0].forced
    assert not fake.flood_errors()


async def test_get_updates_long_polls_and_confirms(
    api: tuple[FakeTelegram, aiohttp.ClientSession],
) -> None:
    fake, _ = api
    ann = User(7, "Ann")
    poll = asyncio.create_task(call(api, "getUpdates", timeout=patient(5)))
    await asyncio.sleep(0.1)
    assert not poll.done()
    update = await fake.private_text(ann, "hi")
    _, body = await asyncio.wait_for(poll, patient(2))
    assert [u["update_id"] for u in body["result"]] == [update["update_id"]]
    again = await call(api, "getUpdates", timeout=0)
    assert len(again[1]["result"]) == 1  # not confirmed yet
    confirmed = await call(api, "getUpdates", offset=update["update_id"] + 1, timeout=0)
    assert confirmed[1]["result"] == []
    await fake.redeliver(update)
    redelivered = await call(api, "getUpdates", offset=update["update_id"] + 1, timeout=0)
    assert [u["update_id"] for u in redelivered[1]["result"]] == [update["update_id"]]


async def test_webhook_blocks_get_updates(api: tuple[FakeTelegram, aiohttp.ClientSession]) -> None:
    assert (await call(api, "setWebhook", url="http://127.0.0.1:9/x", secret_token="bad token!"))[
        0
    ] == 400
    assert (await call(api, "setWebhook", url="http://127.0.0.1:9/x", secret_token="ok_token"))[
        0
    ] == 200
    status, body = await call(api, "getUpdates")
    assert status == 409
    assert body["description"].startswith("Conflict: can't use getUpdates method while webhook")
    assert (await call(api, "deleteWebhook"))[0] == 200
    assert (await call(api, "getUpdates", timeout=0))[0] == 200


async def test_forms_like_ptb_sends_them(api: tuple[FakeTelegram, aiohttp.ClientSession]) -> None:
    fake, session = api
    fake.private_chat(User(7, "Ann"))
    form = {
        "chat_id": "7",
        "text": "hey",
        "entities": json.dumps([{"type": "italic", "offset": 0, "length": 3}]),
    }
    async with session.post(f"{fake.url}/bot{fake.token}/sendMessage", data=form) as response:
        body = await response.json()
    assert body["result"]["entities"] == [{"type": "italic", "offset": 0, "length": 3}]
