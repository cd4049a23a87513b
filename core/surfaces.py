"""How each place people talk to Parley types a command, so one text can name it everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.commands import CATALOGUE, CommandName, CommandSpec
from core.i18n import ENGLISH, N_, Translator

# The persona report is the shell's (`parley admin persona`); chats see the counts in /stats.
_CHAT_COMMANDS = frozenset(spec.name for spec in CATALOGUE) - {CommandName.PERSONAS}


@dataclass(frozen=True, slots=True)
class Surface:
    """One platform's command syntax: `/reset_user 123`, `/parley reset-user @ada`, …"""

    platform: str
    prefix: str
    separator: str = "-"
    commands: frozenset[CommandName] = _CHAT_COMMANDS
    user_argument: str = N_("<user>")  # how a person is named in a command here
    code: bool = True  # show commands as `code` (Telegram links a bare /command instead)
    spelled: dict[CommandName, str] = field(default_factory=dict)

    def parse(self, word: str) -> CommandName | None:
        """The command a typed word names here (`reset_user`, `reset-channel`, …), if any."""
        word = word.strip().lower().lstrip("/")
        for name in self.commands:
            spelled = self.spelled.get(name, name.value).removeprefix(self.prefix.strip() + " ")
            if word in (name.value, name.value.replace("-", self.separator), spelled):
                return name
        return None

    def offers(self, name: CommandName) -> bool:
        """Whether the command can be typed here."""
        return name in self.commands

    def bare(self, name: CommandName) -> str:
        """The command as typed, without an argument."""
        word = self.spelled.get(name, name.value.replace("-", self.separator))
        return f"{self.prefix}{word}"

    def typed(self, name: CommandName, argument: str = "") -> str:
        """The command as a person types it, formatted for a reply."""
        text = self.bare(name) + (f" {argument}" if argument else "")
        return f"`{text}`" if self.code else text

    def usage(self, spec: CommandSpec, t: Translator = ENGLISH) -> str:
        """The command with its argument placeholder (in the reader's language), for help and
        usage lines."""
        argument = self.user_argument if spec.argument == "<user>" else spec.argument
        return self.typed(spec.name, t.gettext(argument))

    def specs(self, *, admin: bool) -> list[CommandSpec]:
        """The catalogue entries offered here, admin ones only to admins."""
        return [s for s in CATALOGUE if self.offers(s.name) and (admin or not s.admin)]


TELEGRAM = Surface(
    "telegram",
    prefix="/",
    separator="_",
    user_argument=N_("<numeric user id>"),
    code=False,
)
SLACK = Surface(
    "slack",
    prefix="/parley ",
    user_argument=N_("@someone"),
    commands=_CHAT_COMMANDS - {CommandName.START},
    spelled={CommandName.RESET_CHAT: "reset-channel"},
)
TERMINAL = Surface(
    "terminal",
    prefix="/",
    code=False,
    commands=frozenset(
        {
            CommandName.HELP,
            CommandName.RESET,
            CommandName.STOP,
            CommandName.RETRY,
            CommandName.FORGET,
            CommandName.USAGE,
            CommandName.PERSONA,
            CommandName.INSTRUCTIONS,
            CommandName.LANGUAGE,
            CommandName.STATS,
        }
    ),
)
CLI = Surface(
    "cli",
    prefix="parley admin ",
    user_argument=N_("<platform:id>"),
    commands=frozenset(
        {
            CommandName.STATS,
            CommandName.RESET_USER,
            CommandName.RESET_CHAT,
            CommandName.RESET_ALL,
            CommandName.ALLOW,
            CommandName.DENY,
            CommandName.ACCESS,
            CommandName.AUDIT,
            CommandName.PERSONAS,
        }
    ),
    spelled={
        CommandName.PERSONAS: "persona",
        CommandName.RESET_USER: "reset --user",
        CommandName.RESET_CHAT: "reset --chat",
        CommandName.RESET_ALL: "reset --all",
    },
)
SURFACES = {s.platform: s for s in (TELEGRAM, SLACK, TERMINAL, CLI)}
