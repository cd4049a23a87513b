"""Slack ⇄ core commands: parse `/parley …` and button presses, draw the core's replies."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any

from bots.slack.controls import parse_control
from bots.slack.inbound import (
    PLATFORM,
    conversation_key,
    is_dm_channel,
    normalise_text,
    reply_target,
)
from bots.slack.locales import SlackLocales
from bots.slack.memory import SlackMemory
from bots.slack.render import markdown_to_mrkdwn
from bots.slack.replies import ReplyFactory, answer_turn
from bots.slack.settings import ThreadScope
from bots.tasks import BackgroundTasks
from core.commands import (
    Caller,
    Choice,
    CommandName,
    CommandRequest,
    Question,
    Reply,
)
from core.service import ChatService
from core.surfaces import SLACK

log = logging.getLogger(__name__)

CONFIRM_YES = "parley_confirm_yes"
CONFIRM_NO = "parley_confirm_no"
PICK = "parley_pick"  # option buttons: action ids parley_pick_0, _1, …; value "<command>|<arg>"
PICK_ACTIONS = re.compile(rf"^{PICK}_\d+$")
_MAX_BUTTONS = 25  # Slack's limit per actions block
_BUTTON_TEXT = 75  # Slack's limit for a button's plain_text
# Slack sends a picked person as <@U…|name>; people may also type @U… or the bare id.
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|^@?([UW][A-Z0-9]{2,})$")
# Commands that act on the person's latest conversation in the channel.
_CONVERSATION = frozenset({CommandName.RESET, CommandName.STOP, CommandName.RETRY})


@dataclass(frozen=True, slots=True)
class Invocation:
    """A verified /parley call: who, where, and the words after the command."""

    user_id: str
    channel_id: str
    team_id: str
    text: str


@dataclass(frozen=True, slots=True)
class CommandReply:
    """What the person sees in return (ephemeral)."""

    text: str
    blocks: list[dict[str, Any]] | None = field(default=None)


def argument(word: str) -> str:
    """A person named in Slack markup → their id; anything else as typed."""
    match = _MENTION.search(word)
    return (match.group(1) or match.group(2)) if match else word


def draw(reply: Reply) -> CommandReply:
    """The core's reply as mrkdwn, with buttons when it asks a question or offers choices."""
    text = markdown_to_mrkdwn(reply.text) if reply.text else ""
    if reply.question is not None:
        return CommandReply(text, question_blocks(text, reply.question))
    if reply.choices:
        return CommandReply(text, choice_blocks(text, reply.choices))
    return CommandReply(text)


def choice_blocks(text: str, choices: tuple[Choice, ...]) -> list[dict[str, Any]]:
    """Options as Block Kit: the text, then one button per option (the current one primary)."""
    buttons: list[dict[str, Any]] = []
    for index, choice in enumerate(choices[:_MAX_BUTTONS]):
        label = f"✓ {choice.label}" if choice.selected else choice.label
        button: dict[str, Any] = {
            "type": "button",
            "action_id": f"{PICK}_{index}",
            "text": {"type": "plain_text", "text": label[:_BUTTON_TEXT], "emoji": False},
            "value": f"{choice.command.value}|{choice.argument}",
        }
        if choice.selected:
            button["style"] = "primary"
        buttons.append(button)
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "block_id": PICK, "elements": buttons},
    ]


def parse_pick(value: str) -> tuple[CommandName, str] | None:
    """An option button's value → (command, argument), or None for one Parley did not make."""
    command, sep, argument = value.partition("|")
    try:
        name = CommandName(command)
    except ValueError:
        return None
    return (name, argument) if sep and argument and name is not CommandName.CONFIRM else None


def question_blocks(text: str, question: Question) -> list[dict[str, Any]]:
    """A yes/no question as Block Kit: the text, then a danger button and a cancel button."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {
            "type": "actions",
            "block_id": "parley_confirm",
            "elements": [
                {
                    "type": "button",
                    "action_id": CONFIRM_YES,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": question.yes},
                    "value": question.id,
                },
                {
                    "type": "button",
                    "action_id": CONFIRM_NO,
                    "text": {"type": "plain_text", "text": question.no},
                    "value": question.id,
                },
            ],
        },
    ]


class SlashCommands:
    """Runs one /parley invocation; replies are computed within Slack's 3 seconds."""

    def __init__(
        self,
        service: ChatService,
        memory: SlackMemory,
        *,
        scope: ThreadScope,
        replies: ReplyFactory,
        tasks: BackgroundTasks,
        locales: SlackLocales,
    ) -> None:
        self._service = service
        self._memory = memory
        self._scope = scope
        self._replies = replies
        self._tasks = tasks
        self._locales = locales

    async def _caller(self, user: str, channel: str, team: str) -> Caller:
        """Who pressed or typed, in which channel, speaking which language."""
        group = bool(channel) and not is_dm_channel(channel)
        language = await self._locales.locale(user)
        return Caller(PLATFORM, user, channel, team, group, language)

    async def run(self, call: Invocation) -> CommandReply:
        """Parse the first word; the core decides and words the reply."""
        word, _, rest = call.text.strip().partition(" ")
        name = SLACK.parse(word) if word else CommandName.HELP
        caller = await self._caller(call.user_id, call.channel_id, call.team_id)
        if name is None:
            return draw(await self._service.commands.unknown(caller, word))
        thread: str | None = None
        key = None
        if name in _CONVERSATION:
            dm = is_dm_channel(call.channel_id)
            thread = await self._memory.latest(call.channel_id, call.user_id)
            if thread is not None or dm:
                key = conversation_key(
                    self._scope, channel=call.channel_id, user=call.user_id, thread=thread, dm=dm
                )
        args = tuple(argument(w) for w in rest.split())
        request = CommandRequest(name, caller, key=key, args=args, text=normalise_text(rest, ""))
        reply = await self._service.command(request)
        if reply.turn is not None:
            target = reply_target(
                team=call.team_id,
                channel=call.channel_id,
                user=call.user_id,
                thread=thread or None,
                dm=is_dm_channel(call.channel_id),
                anchor=thread or None,
            )
            status = (await self._service.phrases_for(caller)).status
            target = replace(target, status=status)  # "is thinking…" in the person's language
            self._tasks.spawn(
                answer_turn(self._service, self._replies, reply.turn, target),
                name=f"slack {name} {key}",
            )
        return draw(reply)

    async def answer(self, user_id: str, team_id: str, question: str, yes: bool) -> Reply:
        """A yes/no button was pressed: the core checks who pressed it and whether it expired."""
        caller = await self._caller(user_id, "", team_id)
        args = (question, "yes" if yes else "no")
        return await self._service.command(CommandRequest(CommandName.CONFIRM, caller, args=args))

    async def pick(self, user_id: str, team_id: str, channel_id: str, value: str) -> Reply:
        """An option button was pressed: the same command as typing it, in that channel."""
        picked = parse_pick(value)
        caller = await self._caller(user_id, channel_id, team_id)
        if picked is None:
            phrases = await self._service.phrases_for(caller)
            return Reply(phrases.stale_button, ok=False, settles=False)
        name, choice = picked
        request = CommandRequest(name, caller, args=(choice,), text=choice)
        return await self._service.command(request)

    async def control(
        self, user_id: str, team_id: str, channel_id: str, action_id: str, value: str
    ) -> Reply:
        """A button under an answer was pressed: the core checks who, and whether it is new."""
        caller = await self._caller(user_id, channel_id, team_id)
        control = parse_control(action_id, value)
        if control is None:
            phrases = await self._service.phrases_for(caller)
            return Reply(phrases.stale_button, ok=False, settles=False)
        return await self._service.command(
            CommandRequest(CommandName.CONTROL, caller, args=control)
        )
