"""The values adapters parse platform input into: who asked, where, and which command.

Every command exists once here; Telegram, Slack, the terminal and `parley admin` only say how it
is typed on their surface (``core.surfaces``) and how its reply is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.conversation import ConversationKey, IncomingMessage


class CommandName(StrEnum):
    """Everything a person can ask of Parley besides a message."""

    START = "start"
    HELP = "help"
    RESET = "reset"
    STOP = "stop"
    RETRY = "retry"
    FORGET = "forget"
    USAGE = "usage"
    PERSONA = "persona"
    INSTRUCTIONS = "instructions"
    STATS = "stats"
    RESET_USER = "reset-user"
    RESET_CHAT = "reset-chat"
    RESET_ALL = "reset-all"
    ALLOW = "allow"
    DENY = "deny"
    ACCESS = "access"
    AUDIT = "audit"
    PERSONAS = "personas"  # which personas there are and how many chats use each (operators)
    CONFIRM = "confirm"  # the answer to a confirmation question (a button, or y/N in a shell)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: whether it is an admin's, what it does, and the argument it takes."""

    name: CommandName
    summary: str
    admin: bool = False
    argument: str = ""  # e.g. "<user>": shown in help and usage lines


CATALOGUE: tuple[CommandSpec, ...] = (
    CommandSpec(CommandName.START, "What this bot is and how to use it"),
    CommandSpec(CommandName.HELP, "The commands"),
    CommandSpec(CommandName.RESET, "Forget our conversation here"),
    CommandSpec(CommandName.STOP, "Stop the answer being written"),
    CommandSpec(CommandName.RETRY, "Answer my last message again"),
    CommandSpec(CommandName.FORGET, "Delete everything I remember about you on this platform"),
    CommandSpec(CommandName.USAGE, "My messages and tokens today, and what is left"),
    CommandSpec(CommandName.PERSONA, "Pick how I answer here", argument="[id]"),
    CommandSpec(
        CommandName.INSTRUCTIONS,
        "Show, set or clear instructions for this chat",
        argument="[text | clear]",
    ),
    CommandSpec(CommandName.STATS, "What the bot remembers and how much it is used", admin=True),
    CommandSpec(
        CommandName.RESET_USER,
        "Forget all of a user's conversations",
        admin=True,
        argument="<user>",
    ),
    CommandSpec(CommandName.RESET_CHAT, "Forget every conversation in this chat", admin=True),
    CommandSpec(CommandName.RESET_ALL, "Forget everything (asks first)", admin=True),
    CommandSpec(
        CommandName.ALLOW, "Let a user, chat or workspace in", admin=True, argument="<entry>"
    ),
    CommandSpec(CommandName.DENY, "Block a user, chat or team", admin=True, argument="<entry>"),
    CommandSpec(CommandName.ACCESS, "The access mode and lists", admin=True),
    CommandSpec(CommandName.AUDIT, "Who did what, when", admin=True, argument="[count]"),
    CommandSpec(CommandName.PERSONAS, "The personas and how many chats use each", admin=True),
)
# Answering a question is not typed (a button, or y/N in a shell): in no menu, checked by asker.
SPECS: dict[CommandName, CommandSpec] = {
    **{spec.name: spec for spec in CATALOGUE},
    CommandName.CONFIRM: CommandSpec(CommandName.CONFIRM, "Answer a question"),
}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked, verified by the platform (a signed Slack request, Telegram's own sender id)."""

    platform: str
    user_id: str
    chat: str = ""
    workspace: str = ""  # Slack team id, for workspace allowlists
    group: bool = False  # a group chat or channel: its settings belong to the chat, not a person

    @property
    def actor(self) -> str:
        """How the audit log names this person: ``platform:user_id``."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One command as the core takes it; ``key`` is the conversation it acts on, if any."""

    name: CommandName
    caller: Caller
    key: ConversationKey | None = None
    args: tuple[str, ...] = ()
    text: str = ""  # everything after the command word as typed, line breaks kept

    @property
    def argument(self) -> str:
        """The first argument, or ''."""
        return self.args[0] if self.args else ""


@dataclass(frozen=True, slots=True)
class Question:
    """A destructive command waits for this to be answered by the person who asked."""

    id: str
    yes: str
    no: str


@dataclass(frozen=True, slots=True)
class Choice:
    """One option offered under a reply (a button); pressing it runs ``command argument``."""

    label: str
    command: CommandName
    argument: str
    selected: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """What the core answers to a command; adapters draw it and nothing more.

    ``text`` is Markdown (bold, code, lists). ``question`` asks for a yes/no answer (buttons on
    Telegram and Slack, a prompt in a shell). ``settles`` tells a button press apart: True when
    the press ended the question (the prompt should be replaced by ``text``), False when it
    was refused (``text`` goes only to the presser). ``turn`` starts a streamed answer (retry).
    ``choices`` are options to pick from (buttons where the platform has them; the text
    always says how to type them too).
    """

    text: str = ""
    ok: bool = True
    question: Question | None = None
    choices: tuple[Choice, ...] = ()
    settles: bool = True
    turn: TurnRequest | None = field(default=None)


class TurnKind(StrEnum):
    """Why a turn runs: a new message, or the last message answered again."""

    MESSAGE = "message"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """Everything that reaches the model enters as one of these, through one admission."""

    key: ConversationKey
    caller: Caller
    kind: TurnKind = TurnKind.MESSAGE
    text: str = ""
    message_id: str = ""

    @classmethod
    def of(cls, message: IncomingMessage) -> TurnRequest:
        """A person's new message as a turn."""
        key = message.key
        caller = Caller(key.platform, message.user_id, key.chat, message.workspace, message.group)
        return cls(message.key, caller, TurnKind.MESSAGE, message.text, message.message_id)
