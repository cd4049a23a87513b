"""The values adapters parse platform input into: who asked, where, and which command.

Every command exists once here; Telegram, Slack, the terminal and `parley admin` only say how it
is typed on their surface (``core.surfaces``) and how its reply is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.conversation import ConversationKey, IncomingMessage
from core.i18n import N_


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
    LANGUAGE = "language"
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
    CONTROL = "control"  # a button under an answer: stop, regenerate or continue it


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command: whether it is an admin's, what it does, and the argument it takes."""

    name: CommandName
    summary: str
    admin: bool = False
    argument: str = ""  # e.g. "<user>": shown in help and usage lines


CATALOGUE: tuple[CommandSpec, ...] = (
    CommandSpec(CommandName.START, N_("What this bot is and how to use it")),
    CommandSpec(CommandName.HELP, N_("The commands")),
    CommandSpec(CommandName.RESET, N_("Forget our conversation here")),
    CommandSpec(CommandName.STOP, N_("Stop the answer being written")),
    CommandSpec(CommandName.RETRY, N_("Answer my last message again")),
    CommandSpec(CommandName.FORGET, N_("Delete everything I remember about you on this platform")),
    CommandSpec(CommandName.USAGE, N_("My messages and tokens today, and what is left")),
    CommandSpec(CommandName.PERSONA, N_("Pick how I answer here"), argument=N_("[id]")),
    CommandSpec(
        CommandName.INSTRUCTIONS,
        N_("Show, set or clear instructions for this chat"),
        argument=N_("[text | clear]"),
    ),
    CommandSpec(
        CommandName.LANGUAGE, N_("Show or pick the language I speak"), argument=N_("[code | auto]")
    ),
    CommandSpec(
        CommandName.STATS, N_("What the bot remembers and how much it is used"), admin=True
    ),
    CommandSpec(
        CommandName.RESET_USER,
        N_("Forget all of a user's conversations"),
        admin=True,
        argument=N_("<user>"),
    ),
    CommandSpec(CommandName.RESET_CHAT, N_("Forget every conversation in this chat"), admin=True),
    CommandSpec(CommandName.RESET_ALL, N_("Forget everything (asks first)"), admin=True),
    CommandSpec(
        CommandName.ALLOW,
        N_("Let a user, chat or workspace in"),
        admin=True,
        argument=N_("<entry>"),
    ),
    CommandSpec(
        CommandName.DENY, N_("Block a user, chat or team"), admin=True, argument=N_("<entry>")
    ),
    CommandSpec(CommandName.ACCESS, N_("The access mode and lists"), admin=True),
    CommandSpec(CommandName.AUDIT, N_("Who did what, when"), admin=True, argument=N_("[count]")),
    CommandSpec(CommandName.PERSONAS, N_("The personas and how many chats use each"), admin=True),
)
# Answering a question is not typed (a button, or y/N in a shell): in no menu, checked by asker.
SPECS: dict[CommandName, CommandSpec] = {
    **{spec.name: spec for spec in CATALOGUE},
    CommandName.CONFIRM: CommandSpec(CommandName.CONFIRM, N_("Answer a question")),
    CommandName.CONTROL: CommandSpec(CommandName.CONTROL, N_("Stop, regenerate or continue")),
}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked, verified by the platform (a signed Slack request, Telegram's own sender id)."""

    platform: str
    user_id: str
    chat: str = ""
    workspace: str = ""  # Slack team id, for workspace allowlists
    group: bool = False  # a group chat or channel: its settings belong to the chat, not a person
    language: str = ""  # the person's language as their platform names it ("zh-hans", "zh-CN")

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
    """Why a turn runs: a new message, or the newest answer made again in some way."""

    MESSAGE = "message"
    RETRY = "retry"  # /retry: the last message answered again, in a new reply
    REGENERATE = "regenerate"  # its button: the same, written over the answer it sits under
    CONTINUE = "continue"  # its button: an answer cut by the token limit goes on
    EDIT = "edit"  # the person edited the question of the newest answer: answered anew


@dataclass(frozen=True, slots=True)
class TurnRequest:
    """Everything that reaches the model enters as one of these, through one admission."""

    key: ConversationKey
    caller: Caller
    kind: TurnKind = TurnKind.MESSAGE
    text: str = ""
    message_id: str = ""
    answer: str = ""  # regenerate, continue: the answer whose button was pressed
    version: str = ""  # an edit: the platform's stamp of this version of the message

    @property
    def rewrites(self) -> bool:
        """Whether this turn rewrites an earlier answer in its own messages."""
        return self.kind in (TurnKind.REGENERATE, TurnKind.CONTINUE, TurnKind.EDIT)

    @classmethod
    def of(cls, message: IncomingMessage) -> TurnRequest:
        """A person's new message as a turn."""
        key = message.key
        caller = Caller(
            key.platform,
            message.user_id,
            key.chat,
            message.workspace,
            message.group,
            message.language,
        )
        return cls(message.key, caller, TurnKind.MESSAGE, message.text, message.message_id)

    @classmethod
    def edited(cls, message: IncomingMessage, version: str) -> TurnRequest:
        """A person's edit of a message: its question is answered anew if it is the newest."""
        turn = cls.of(message)
        return cls(turn.key, turn.caller, TurnKind.EDIT, turn.text, turn.message_id, "", version)
