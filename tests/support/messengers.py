"""Telegram and Slack as their users see them, so one command suite runs on both platforms.

A ``Messenger`` is what a person does in one platform's client: write to the bot, type a
command, press a button, read what came back. Scenarios only speak in those terms, so the same
test proves the same behaviour on Telegram and Slack.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

import pytest

from bots.slack.commands import CONFIRM_NO, CONFIRM_YES, PICK
from bots.slack.render import unescape
from bots.telegram.app import TelegramBot
from core.commands import CommandName
from core.service import ChatService
from core.surfaces import SLACK, TELEGRAM
from tests.fakes.fake_slack import wait_until
from tests.fakes.fake_telegram import FakeMessage, FakeTelegram, User
from tests.fakes.fake_vllm import FakeVLLM
from tests.integration.slack.conftest import RunningBot
from tests.integration.telegram.conftest import ADMIN_ID, idle

SECOND_ADMIN_TG = 4343
SECOND_ADMIN_SLACK = "U0ADMIN2"
TELEGRAM_ADMINS = f"telegram:{ADMIN_ID},telegram:{SECOND_ADMIN_TG}"
SLACK_ADMINS = f"slack:U0ADMIN,slack:{SECOND_ADMIN_SLACK}"


# Where the bot keeps its state: the session's single redis-server, a Sentinel-managed primary
# with its replica, or a three-primary Cluster.
STORES = ("redis", "sentinel", "cluster")


def store_settings(request: pytest.FixtureRequest, where: str) -> dict[str, Any]:
    """Core settings that point the bot at ``where`` (emptied first, but for the session's
    redis-server, which its own fixture empties)."""
    if where == "sentinel":
        sentinels = request.getfixturevalue("sentinels")
        sentinels.flush()
        return {"redis_url": None, "redis_sentinels": sentinels.addresses}
    if where == "cluster":
        cluster = request.getfixturevalue("cluster")
        cluster.flush()
        return {"redis_url": cluster.url, "redis_cluster": True}
    return {}


CHINESE = "li"  # a person whose app (Telegram) or workspace profile (Slack) is in Chinese


class Messenger(Protocol):
    """A platform as its users see it; people are named 'alice', 'bob', 'admin', 'admin2', and
    'li', whose platform says they speak Simplified Chinese."""

    name: str
    vllm: FakeVLLM

    @property
    def service(self) -> ChatService:
        """The running bot's core (for reading the store, never for acting)."""
        ...

    def user_id(self, person: str) -> str:
        """The platform's id for a person."""
        ...

    async def say(self, person: str, text: str) -> None:
        """The person writes to the bot in private and waits for the answer."""
        ...

    async def command(self, person: str, name: CommandName, *args: str) -> str:
        """The person runs a command in private; returns what the bot said back ('' if nothing)."""
        ...

    async def press(self, person: str, *, yes: bool) -> str:
        """The person presses yes/no under the last question; returns what they were shown."""
        ...

    def question_text(self) -> str:
        """What the last question's message shows now."""
        ...

    def question_has_buttons(self) -> bool:
        """Whether the last question still offers its buttons."""
        ...

    def choices(self) -> list[str]:
        """The option buttons under the last reply that offered some, as labelled."""
        ...

    async def pick(self, person: str, label: str) -> str:
        """The person presses the option labelled ``label``; returns what they were shown."""
        ...

    def raw_replies(self) -> list[str]:
        """Every command reply as the platform received it (markup included), oldest first."""
        ...

    def answers(self, person: str) -> list[str]:
        """The model's answers (and Parley's notes) in the person's private chat, oldest first."""
        ...

    def answer_buttons(self, person: str) -> list[str]:
        """The labels of the buttons under the newest answer in the person's private chat."""
        ...

    async def send(self, person: str, text: str) -> None:
        """The person writes to the bot in private and does not wait for the answer."""
        ...

    async def press_answer(
        self, person: str, label: str, *, under: str = "", refused: bool = False
    ) -> str:
        """``person`` presses the button starting with ``label`` under the newest answer in
        ``under``'s private chat (their own by default), waits for what it started; returns
        what only the presser was shown ('' if nothing; ``refused``: something is)."""
        ...

    async def edit_last(self, person: str, text: str, *, again: bool = False) -> None:
        """The person edits their newest message to ``text`` and waits; ``again`` delivers that
        same edit once more, as a platform may."""
        ...


def _mrkdwn(body: dict[str, Any]) -> list[str]:
    """The parts of a Slack message Slack parses as mrkdwn (plain_text never acts)."""
    texts = [str(body.get("text", ""))]
    for block in body.get("blocks") or ():
        text = block.get("text") or {}
        if text.get("type") == "mrkdwn":
            texts.append(str(text.get("text", "")))
    return texts


def _plain(text: str) -> str:
    """Slack mrkdwn or Telegram text → the words a person reads (markup symbols dropped)."""
    return unescape(text).replace("*", "").replace("`", "")


class TelegramMessenger:
    """Parley's Telegram bot against the fake Bot API."""

    name = "telegram"

    def __init__(self, bot: TelegramBot, telegram: FakeTelegram, vllm: FakeVLLM) -> None:
        self.bot = bot
        self.telegram = telegram
        self.vllm = vllm
        self._people = {
            "alice": telegram.new_user("Alice"),
            "bob": telegram.new_user("Bob"),
            "admin": User(ADMIN_ID, "Root"),
            "admin2": User(SECOND_ADMIN_TG, "Deputy"),
            CHINESE: telegram.new_user("Li", language_code="zh-hans"),
        }
        self._question: FakeMessage | None = None
        self._choices: FakeMessage | None = None
        self._raw: list[str] = []

    @property
    def service(self) -> ChatService:
        return self.bot.runtime.service

    def user_id(self, person: str) -> str:
        return str(self._people[person].id)

    async def say(self, person: str, text: str) -> None:
        await self.telegram.private_text(self._people[person], text)
        await idle(self.bot, self.telegram)

    async def command(self, person: str, name: CommandName, *args: str) -> str:
        user = self._people[person]
        before = len(self.telegram.bot_messages(user.id))
        word = TELEGRAM.bare(name).removeprefix("/")
        await self.telegram.command(self.telegram.private_chat(user), user, word, " ".join(args))
        await idle(self.bot, self.telegram)
        messages = self.telegram.bot_messages(user.id)[before:]
        for message in messages:
            self._raw.append(json.dumps([message.text, message.entities]))
            markup = message.reply_markup
            if markup is not None:
                first = markup["inline_keyboard"][0][0]["callback_data"]
                if first.startswith("cf|"):
                    self._question = message
                elif first.startswith("pk|"):
                    self._choices = message
        return _plain(messages[-1].text) if messages else ""

    async def press(self, person: str, *, yes: bool) -> str:
        assert self._question is not None
        assert self._question.reply_markup is not None
        yes_button, no_button = self._question.reply_markup["inline_keyboard"][0]
        data = (yes_button if yes else no_button)["callback_data"]
        update = await self.telegram.press_button(self._people[person], self._question, data)
        await idle(self.bot, self.telegram)
        return str(self.telegram.callback_answers[update["callback_query"]["id"]]["text"])

    def question_text(self) -> str:
        assert self._question is not None
        return _plain(self._question.text)

    def question_has_buttons(self) -> bool:
        return self._question is not None and self._question.reply_markup is not None

    def answers(self, person: str) -> list[str]:
        return [_plain(t) for t in self.telegram.bot_texts(self._people[person].id)]

    def choices(self) -> list[str]:
        markup = self._choices.reply_markup if self._choices is not None else None
        return [row[0]["text"] for row in markup["inline_keyboard"]] if markup else []

    async def pick(self, person: str, label: str) -> str:
        assert self._choices is not None
        assert self._choices.reply_markup is not None
        rows = self._choices.reply_markup["inline_keyboard"]
        (data,) = [row[0]["callback_data"] for row in rows if row[0]["text"] == label]
        update = await self.telegram.press_button(self._people[person], self._choices, data)
        await idle(self.bot, self.telegram)
        self._raw.append(json.dumps([self._choices.text, self._choices.entities]))
        return str(self.telegram.callback_answers[update["callback_query"]["id"]]["text"])

    def raw_replies(self) -> list[str]:
        return list(self._raw)

    def _newest_answer(self, person: str) -> FakeMessage:
        return self.telegram.bot_messages(self._people[person].id)[-1]

    def answer_buttons(self, person: str) -> list[str]:
        markup = self._newest_answer(person).reply_markup
        return [b["text"] for row in markup["inline_keyboard"] for b in row] if markup else []

    async def send(self, person: str, text: str) -> None:
        await self.telegram.private_text(self._people[person], text)

    async def press_answer(
        self, person: str, label: str, *, under: str = "", refused: bool = False
    ) -> str:
        message = self._newest_answer(under or person)
        assert message.reply_markup is not None, "no buttons under the newest answer"
        buttons = [b for row in message.reply_markup["inline_keyboard"] for b in row]
        (data,) = [b["callback_data"] for b in buttons if b["text"].startswith(label)]
        update = await self.telegram.press_button(self._people[person], message, data)
        await idle(self.bot, self.telegram)
        answer = self.telegram.callback_answers[update["callback_query"]["id"]]
        return str(answer.get("text") or "")

    async def edit_last(self, person: str, text: str, *, again: bool = False) -> None:
        user = self._people[person]
        mine = [m for m in self.telegram.messages(user.id) if m.sender.id == user.id]
        if again:
            await self.telegram.deliver(mine[-1], edited=True)  # a new update, the same edit
        else:
            await self.telegram.edit_user_message(mine[-1], text)
        await idle(self.bot, self.telegram)


class SlackMessenger:
    """Parley's Slack bot (HTTP mode) against the fake Slack; private means a DM."""

    name = "slack"

    def __init__(self, bot: RunningBot) -> None:
        self.bot = bot
        self.vllm = bot.vllm
        self._people = {
            "alice": "U0ALICE",
            "bob": "U0BOB",
            "admin": "U0ADMIN",
            "admin2": SECOND_ADMIN_SLACK,
            CHINESE: "U0LI",
        }
        bot.slack.locales["U0LI"] = "zh-CN"  # what users.info says with include_locale
        self._question_id = ""
        self._question_text = ""
        self._question_open = False
        self._choices: list[tuple[str, str, str]] = []  # label, action id, value
        self._raw: list[str] = []
        self._sent: dict[str, dict[str, Any]] = {}  # each person's newest message event
        self._edits: dict[str, dict[str, Any]] = {}  # and its newest edit event

    @property
    def service(self) -> ChatService:
        return self.bot.runtime.service

    def user_id(self, person: str) -> str:
        return self._people[person]

    def _dm(self, person: str) -> str:
        return f"D{self._people[person]}"

    async def say(self, person: str, text: str) -> None:
        channel = self._dm(person)
        count = len(self.bot.slack.bot_replies(channel, None))
        await self.send(person, text)
        await self.bot.answered(channel, None, count=count + 1)

    async def send(self, person: str, text: str) -> None:
        event = await self.bot.dm(self._people[person], text, channel=self._dm(person))
        self._sent[person] = event

    async def command(self, person: str, name: CommandName, *args: str) -> str:
        channel = self._dm(person)
        text = " ".join((SLACK.bare(name).removeprefix("/parley "), *args))
        delivery = await self.bot.sender.command(
            text, user_id=self._people[person], channel_id=channel
        )
        assert delivery.status == 200, delivery  # the sender gives up after 3 s, as Slack does
        body = delivery.json()
        self._raw += _mrkdwn(body)
        for block in body.get("blocks") or ():
            if block.get("block_id") == PICK:
                self._choices = [
                    (e["text"]["text"], e["action_id"], e["value"]) for e in block["elements"]
                ]
            for element in block.get("elements") or ():
                if element.get("action_id") == CONFIRM_YES:
                    self._question_id = element["value"]
                    self._question_text = _plain(str(body["text"]))
                    self._question_open = True
        if name is CommandName.RETRY:  # the turn runs after the ack: wait until it ended
            await asyncio.sleep(0.05)
            await wait_until(lambda: self.service.lifecycle.in_flight == 0, timeout=30)
            await wait_until(
                lambda: not any(m.streaming for m in self.bot.slack.bot_replies(channel, None))
            )
        await self.bot.idle()
        return _plain(str(body.get("text", "")))

    async def press(self, person: str, *, yes: bool) -> str:
        before = len(self.bot.slack.responses)
        action = CONFIRM_YES if yes else CONFIRM_NO
        click = await self.bot.sender.action(
            action, self._question_id, user_id=self._people[person], channel_id=self._dm("admin")
        )
        assert click.status == 200
        await wait_until(lambda: len(self.bot.slack.responses) > before)
        response = self.bot.slack.responses[-1]
        if response.get("replace_original"):
            self._question_text = _plain(str(response["text"]))
            self._question_open = False
        return _plain(str(response["text"]))

    def question_text(self) -> str:
        return self._question_text

    def question_has_buttons(self) -> bool:
        return self._question_open

    def answers(self, person: str) -> list[str]:
        return [_plain(m.visible) for m in self.bot.slack.bot_replies(self._dm(person), None)]

    def choices(self) -> list[str]:
        return [label for label, _, _ in self._choices]

    async def pick(self, person: str, label: str) -> str:
        ((action, value),) = [(a, v) for text, a, v in self._choices if text == label]
        before = len(self.bot.slack.responses)
        click = await self.bot.sender.action(
            action, value, user_id=self._people[person], channel_id=self._dm(person)
        )
        assert click.status == 200
        await wait_until(lambda: len(self.bot.slack.responses) > before)
        response = self.bot.slack.responses[-1]
        self._raw += _mrkdwn(response)
        return _plain(str(response["text"]))

    def raw_replies(self) -> list[str]:
        return list(self._raw)

    def answer_buttons(self, person: str) -> list[str]:
        newest = self.bot.slack.bot_replies(self._dm(person), None)[-1]
        return [str(b["text"]["text"]) for b in newest.buttons]

    async def _settled(self) -> None:
        """Every turn over and every stream stopped."""
        await asyncio.sleep(0.05)
        await wait_until(lambda: self.service.lifecycle.in_flight == 0, timeout=30)
        await wait_until(lambda: not any(m.streaming for m in self.bot.slack.messages))
        await self.bot.idle()

    async def press_answer(
        self, person: str, label: str, *, under: str = "", refused: bool = False
    ) -> str:
        channel = self._dm(under or person)
        newest = self.bot.slack.bot_replies(channel, None)[-1]
        (button,) = [b for b in newest.buttons if str(b["text"]["text"]).startswith(label)]
        before = len(self.bot.slack.responses)
        click = await self.bot.sender.action(
            button["action_id"],
            button["value"],
            user_id=self._people[person],
            channel_id=channel,
            message=newest,
        )
        assert click.status == 200
        if refused:
            await wait_until(lambda: len(self.bot.slack.responses) > before)
        await self._settled()
        responses = self.bot.slack.responses[before:]
        return _plain(str(responses[-1]["text"])) if responses else ""

    async def edit_last(self, person: str, text: str, *, again: bool = False) -> None:
        if again:
            event = self._edits[person]
        else:
            event = self.bot.slack.edit_event(self._sent[person], text)
            self._edits[person] = event
        delivery = await self.bot.sender.event(event)  # a new event_id each time
        assert delivery.status == 200, delivery
        await self._settled()
