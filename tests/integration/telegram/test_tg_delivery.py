"""Getting updates in: redeliveries handled once, many chats at once, webhook mode."""

from __future__ import annotations

import asyncio
import socket

import aiohttp

from tests.fakes.fake_telegram import FakeTelegram
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.integration.telegram.conftest import BotFactory, idle
from tests.support.serving_gc import gc_as_served

SECRET = "s3cr3t-_Token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_redelivered_update_is_answered_once(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    update = await telegram.private_text(alice, "only once")
    await telegram.redeliver(update)  # the same update_id twice in one batch
    await idle(bot, telegram)
    await telegram.redeliver(update)  # and again after it was handled
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == ["You said: only once"]
    assert len(vllm.requests) == 1


async def test_twenty_chats_streaming_at_once_never_hit_flood_control(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    vllm.token_interval = 0.003

    def long_echo(messages: list[dict[str, str]]) -> Reply:
        last = [m["content"] for m in messages if m["role"] == "user"][-1]
        return Reply(reasoning="Echo it.", answer=f"{last}: " + " ".join(["echo"] * 400))

    vllm.responder = long_echo
    bot = await start_bot(scale=0.2)  # 20 streams in one process: keep loop jitter small
    users = [telegram.new_user(f"User{i}") for i in range(20)]
    with gc_as_served():  # as `parley telegram` runs: no full collection stalls the loop
        await asyncio.gather(*(telegram.private_text(u, f"chat {u.id}") for u in users))
        await idle(bot, telegram, timeout=90)
    for user in users:
        assert telegram.bot_texts(user.id) == [f"chat {user.id}: " + " ".join(["echo"] * 400)]
        edits = telegram.bot_messages(user.id)[0].edits
        assert edits >= 2, "the reply should have streamed in several edits"
    refused = [(c.method, c.chat_id, c.description) for c in telegram.errors()]
    assert not refused


async def test_one_chats_updates_are_handled_in_arrival_order(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    """The adapter's part of ordering: a chat's updates are processed one after another."""
    bot = await start_bot()
    alice = telegram.new_user()
    chat = telegram.private_chat(alice)
    for command in ("start", "help", "stop", "help", "start"):
        await telegram.command(chat, alice, command)
    await idle(bot, telegram)
    kinds = [
        "start" if "Hi, I'm Parley" in text else "help" if "/retry" in text else "stop"
        for text in telegram.bot_texts(alice.id)
    ]
    assert kinds == ["start", "help", "stop", "help", "start"]


async def test_updates_of_one_chat_keep_their_order(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    bot = await start_bot()
    alice = telegram.new_user()
    for i in range(4):
        await telegram.private_text(alice, f"message {i}")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == [f"You said: message {i}" for i in range(4)]


async def test_webhook_mode_with_a_secret(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    bot = await start_bot(
        tg={
            "telegram_webhook_url": url,
            "telegram_webhook_secret": SECRET,
            "telegram_webhook_listen": f"127.0.0.1:{port}",
        }
    )
    assert telegram.webhook is not None
    assert (telegram.webhook.url, telegram.webhook.secret_token) == (url, SECRET)
    alice = telegram.new_user()
    await telegram.private_text(alice, "via webhook")
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == ["You said: via webhook"]
    assert not telegram.calls_to("getUpdates")
    assert [d.status for d in telegram.deliveries] == [200]

    forged = {
        "update_id": 1,
        "message": {
            "message_id": 99,
            "date": 0,
            "chat": {"id": alice.id, "type": "private"},
            "from": alice.to_dict(),
            "text": "forged",
        },
    }
    async with aiohttp.ClientSession() as session:
        for headers in (
            {},
            {"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1]},
        ):
            async with session.post(url, json=forged, headers=headers) as response:
                assert response.status == 403
        async with session.post(
            url, data=b"{", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        ) as response:
            assert response.status == 400
    await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == ["You said: via webhook"]
    assert len(vllm.requests) == 1


async def test_two_replicas_handle_an_update_once(
    start_bot: BotFactory, telegram: FakeTelegram, vllm: FakeVLLM
) -> None:
    """Telegram redelivers to whichever replica answers: the shared Redis claim wins once."""
    urls = []
    bots = []
    for _ in range(2):
        port = free_port()
        url = f"http://127.0.0.1:{port}/hook"
        bots.append(
            await start_bot(
                tg={
                    "telegram_webhook_url": url,
                    "telegram_webhook_secret": SECRET,
                    "telegram_webhook_listen": f"127.0.0.1:{port}",
                }
            )
        )
        urls.append(url)
    alice = telegram.new_user()
    message = telegram.message(telegram.private_chat(alice), alice, "answer me once")
    update = {"update_id": 777, "message": message.to_dict()}
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with aiohttp.ClientSession() as session:
        responses = await asyncio.gather(
            *(session.post(url, json=update, headers=headers) for url in urls * 2)
        )
        assert [r.status for r in responses] == [200] * 4
        for response in responses:
            response.release()
    for bot in bots:
        await idle(bot, telegram)
    assert telegram.bot_texts(alice.id) == ["You said: answer me once"]
    assert len(vllm.requests) == 1
