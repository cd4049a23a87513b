"""Slack ⇄ core commands: parse `/parley …` and button presses, draw the core's replies."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from bots.slack.inbound import PLATFORM, conversation_key, is_dm_channel, reply_target
from bots.slack.memory import SlackMemory
from bots.slack.render import markdown_to_mrkdwn
from bots.slack.replies import ReplyFactory
from bots.slack.settings import ThreadScope
from bots.slack.sink import ReplyTarget
from bots.tasks import BackgroundTasks
from core.commands import Caller, CommandName, CommandRequest, Question, Reply, TurnRequest
from core.service import ChatService
from core.surfaces import SLACK

log = logging.getLogger(__name__)

CONFIRM_YES = "parley_confirm_yes"
CONFIRM_NO = "parley_confirm_no"
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
    """The core's reply as mrkdwn, with buttons when it asks a question."""
    text = markdown_to_mrkdwn(reply.text) if reply.text else ""
    if reply.question is None:
        return CommandReply(text)
    return CommandReply(text, question_blocks(text, reply.question))


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
    ) -> None:
        self._service = service
        self._memory = memory
        self._scope = scope
        self._replies = replies
        self._tasks = tasks

    async def run(self, call: Invocation) -> CommandReply:
        """Parse the first word; the core decides and words the reply."""
        word, _, rest = call.text.strip().partition(" ")
        name = SLACK.parse(word) if word else CommandName.HELP
        if name is None:
            return draw(self._service.commands.unknown(PLATFORM, word))
        caller = Caller(PLATFORM, call.user_id, call.channel_id, call.team_id)
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
        reply = await self._service.command(CommandRequest(name, caller, key=key, args=args))
        if reply.turn is not None:
            target = reply_target(
                team=call.team_id,
                channel=call.channel_id,
                user=call.user_id,
                thread=thread or None,
                dm=is_dm_channel(call.channel_id),
                anchor=thread or None,
            )
            self._tasks.spawn(self._turn(reply.turn, target), name=f"slack {name} {key}")
        return draw(reply)

    async def answer(self, user_id: str, team_id: str, question: str, yes: bool) -> Reply:
        """A yes/no button was pressed: the core checks who pressed it and whether it expired."""
        caller = Caller(PLATFORM, user_id, workspace=team_id)
        args = (question, "yes" if yes else "no")
        return await self._service.command(CommandRequest(CommandName.CONFIRM, caller, args=args))

    async def _turn(self, request: TurnRequest, target: ReplyTarget) -> None:
        """A turn a command started (retry), answered in the thread it belongs to."""
        sink = self._replies.sink(target)
        try:
            result = await self._service.submit(request, sink)
        finally:
            await sink.close()
        log.info("slack %s %s: %s", request.kind, request.key, result.outcome)
