"""`/parley`: help, reset, stop, retry for everyone; resets and stats for admins only."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from bots.slack import texts
from bots.slack.events import PLATFORM, conversation_key, is_dm_channel, reply_target
from bots.slack.memory import SlackMemory
from bots.slack.replies import ReplyFactory
from bots.slack.settings import ThreadScope
from bots.slack.sink import ReplyTarget
from bots.slack.tasks import BackgroundTasks
from core.conversation import ConversationKey
from core.phrases import Phrases
from core.service import ChatService
from core.settings import CoreSettings

log = logging.getLogger(__name__)

RESET_ALL_CONFIRM = "parley_reset_all_confirm"
RESET_ALL_CANCEL = "parley_reset_all_cancel"
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>|^@?([UW][A-Z0-9]{2,})$")
_ADMIN_ONLY = frozenset({"reset-user", "reset-channel", "reset-all", "stats"})


@dataclass(frozen=True, slots=True)
class Invocation:
    """A verified /parley call: who, where, and the words after the command."""

    user_id: str
    channel_id: str
    team_id: str
    text: str


@dataclass(frozen=True, slots=True)
class CommandReply:
    """What the user sees in return (ephemeral)."""

    text: str
    blocks: list[dict[str, Any]] | None = field(default=None)


class SlashCommands:
    """Runs one /parley invocation; replies are computed within Slack's 3 seconds."""

    def __init__(
        self,
        service: ChatService,
        settings: CoreSettings,
        memory: SlackMemory,
        *,
        scope: ThreadScope,
        phrases: Phrases,
        replies: ReplyFactory,
        tasks: BackgroundTasks,
    ) -> None:
        self._service = service
        self._settings = settings
        self._memory = memory
        self._scope = scope
        self._phrases = phrases
        self._replies = replies
        self._tasks = tasks

    def is_admin(self, user_id: str) -> bool:
        """ADMIN_IDS, matched against the id Slack signed."""
        return self._settings.is_admin(PLATFORM, user_id)

    async def run(self, call: Invocation) -> CommandReply:
        """Dispatch on the first word; admin commands are refused to others, changing nothing."""
        word, _, rest = call.text.strip().partition(" ")
        name = word.lower()
        if name in _ADMIN_ONLY and not self.is_admin(call.user_id):
            log.info("refused /parley %s from %s", name, call.user_id)
            return CommandReply(texts.NOT_ADMIN)
        if name in ("reset", "stop", "retry"):
            return await self._conversation_command(name, call)
        if name == "forget":
            count = await self._service.forget(PLATFORM, call.user_id)
            return CommandReply(texts.forgot(count, "of yours, everywhere"))
        actor = f"{PLATFORM}:{call.user_id}"
        if name == "reset-user":
            return await self._reset_user(rest.strip(), actor)
        if name == "reset-channel":
            count = await self._service.reset_chat(PLATFORM, call.channel_id, actor=actor)
            return CommandReply(texts.forgot(count, "in this channel"))
        if name == "reset-all":
            return _confirm_reset_all()
        if name == "stats":
            return await self._stats()
        return self._help(call.user_id)

    async def confirm_reset_all(self, user_id: str) -> str:
        """The confirmation button was pressed: check again, then forget everything."""
        if not self.is_admin(user_id):
            return texts.NOT_ADMIN
        count = await self._service.reset_all(actor=f"{PLATFORM}:{user_id}")
        log.info("reset-all by %s: %d conversations", user_id, count)
        return texts.forgot(count, "in total")

    def _help(self, user_id: str) -> CommandReply:
        """Help, with the admin part for admins."""
        return CommandReply(texts.HELP + (texts.ADMIN_HELP if self.is_admin(user_id) else ""))

    async def _conversation_command(self, name: str, call: Invocation) -> CommandReply:
        """reset / stop / retry act on the user's latest conversation in this channel."""
        dm = is_dm_channel(call.channel_id)
        thread = await self._memory.latest(call.channel_id, call.user_id)
        if thread is None and not dm:
            return CommandReply(texts.NO_CONVERSATION)
        key = conversation_key(
            self._scope, channel=call.channel_id, user=call.user_id, thread=thread, dm=dm
        )
        if name == "reset":
            forgotten = await self._service.reset(key)
            return CommandReply(self._phrases.reset_done if forgotten else texts.RESET_NOTHING)
        if name == "stop":
            running = await self._service.stop(key)
            return CommandReply(
                self._phrases.stop_requested if running else self._phrases.nothing_running
            )
        target = reply_target(
            team=call.team_id,
            channel=call.channel_id,
            user=call.user_id,
            thread=thread or None,
            dm=dm,
            anchor=thread or None,
        )
        self._tasks.spawn(self._retry(key, target, call.user_id), name=f"slack retry {key}")
        return CommandReply(texts.RETRYING)

    async def _retry(self, key: ConversationKey, target: ReplyTarget, user_id: str) -> None:
        """Answer the last message again, in the thread it was asked in."""
        sink = self._replies.sink(target)
        try:
            result = await self._service.retry(key, sink, user_id=user_id)
        finally:
            await sink.close()
        log.info("slack retry %s: %s", key, result.outcome)

    async def _reset_user(self, argument: str, actor: str) -> CommandReply:
        """reset-user @someone (Slack sends the mention as <@U…|name>)."""
        match = _MENTION.search(argument)
        if match is None:
            return CommandReply(texts.RESET_USER_USAGE)
        user = match.group(1) or match.group(2)
        count = await self._service.reset_user(PLATFORM, user, actor=actor)
        return CommandReply(texts.forgot(count, f"of <@{user}>"))

    async def _stats(self) -> CommandReply:
        """What the store holds and how much the bot was used."""
        stats = await self._service.stats()
        usage = await self._service.usage_report()
        lines = [
            f"*Conversations:* {stats.conversations}",
            f"*Messages:* {stats.messages}",
        ]
        lines += [f"• {name}: {count}" for name, count in sorted(stats.by_platform.items())]
        for title, period in (("Today (UTC)", usage.today), ("Total", usage.total)):
            for name, u in period.items():
                lines.append(
                    f"*{title}, {name}:* {u.users} users, {u.turns} turns, "
                    f"{u.tokens_in} tokens in, {u.tokens_out} out"
                )
        return CommandReply("\n".join(lines))


def _confirm_reset_all() -> CommandReply:
    """Ask before forgetting everything."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": texts.RESET_ALL_QUESTION}},
        {
            "type": "actions",
            "block_id": "parley_reset_all",
            "elements": [
                {
                    "type": "button",
                    "action_id": RESET_ALL_CONFIRM,
                    "style": "danger",
                    "text": {"type": "plain_text", "text": "Forget everything"},
                    "value": "reset-all",
                },
                {
                    "type": "button",
                    "action_id": RESET_ALL_CANCEL,
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "value": "cancel",
                },
            ],
        },
    ]
    return CommandReply(texts.RESET_ALL_QUESTION, blocks)
