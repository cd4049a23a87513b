"""`parley admin`: operators reset, inspect and control access from the shell (same Redis)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from bots.runtime import open_runtime
from bots.terminal.app import plain_markdown, terminal_language
from core.commands import Caller, CommandName, CommandRequest
from core.i18n import N_, Translator
from core.service import ChatService
from core.settings import CoreSettings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`parley admin …` subcommands."""
    admin = sub.add_parser("admin", help="reset conversations, stats, access, audit log")
    actions = admin.add_subparsers(dest="admin_command", required=True)
    reset = actions.add_parser("reset", help="forget conversations")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", metavar="PLATFORM:ID", help="one user, e.g. telegram:123")
    target.add_argument("--chat", metavar="PLATFORM:ID", help="one chat or channel")
    target.add_argument("--all", action="store_true", help="everything")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    actions.add_parser("stats", help="users, conversations, turns and tokens per platform")
    for name, what in (("allow", "add to the allowlist"), ("deny", "block")):
        entry = actions.add_parser(name, help=what)
        entry.add_argument("entry", help="platform:user_id, platform:chat:ID or slack:team:ID")
    actions.add_parser("access", help="show the access mode and lists")
    actions.add_parser("persona", help="the personas and how many chats picked each")
    audit = actions.add_parser("audit", help="who did what, when")
    audit.add_argument("--limit", type=int, default=50)


def request(args: argparse.Namespace, caller: Caller) -> CommandRequest:
    """The argparse words as the core's command (the same one a chat admin would send)."""
    command = args.admin_command
    if command == "reset":
        if args.user:
            return CommandRequest(CommandName.RESET_USER, caller, args=(args.user,))
        if args.chat:
            return CommandRequest(CommandName.RESET_CHAT, caller, args=(args.chat,))
        return CommandRequest(CommandName.RESET_ALL, caller)
    if command in ("allow", "deny"):
        return CommandRequest(CommandName(command), caller, args=(args.entry,))
    if command == "audit":
        return CommandRequest(CommandName.AUDIT, caller, args=(str(args.limit),))
    if command == "persona":
        return CommandRequest(CommandName.PERSONAS, caller)
    return CommandRequest(CommandName(command), caller)


NEEDS_YES = N_("refusing without confirmation: add --yes")


def _confirm(question: str, yes: bool, stdin: TextIO, out: TextIO, t: Translator) -> bool:
    """--yes, or a y/N on a terminal; a script without --yes is refused."""
    if yes:
        return True
    if not stdin.isatty():
        out.write(t.gettext(NEEDS_YES) + "\n")
        return False
    out.write(f"{question} [y/N] ")
    out.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


async def execute(
    service: ChatService, args: argparse.Namespace, *, stdin: TextIO, out: TextIO
) -> int:
    """Run one admin command through the core; questions are answered here, as on a button."""
    caller = Caller("cli", getpass.getuser(), language=terminal_language())
    reply = await service.command(request(args, caller))
    if reply.question is not None:
        yes = getattr(args, "yes", False)
        t = service.commands.languages.platform_language(caller)
        agreed = _confirm(plain_markdown(reply.text), yes, stdin, out, t)
        answer = (reply.question.id, "yes" if agreed else "no")
        reply = await service.command(CommandRequest(CommandName.CONFIRM, caller, args=answer))
        if not agreed:
            out.write(plain_markdown(reply.text) + "\n")
            return 1
    out.write(plain_markdown(reply.text) + "\n")
    return 0 if reply.ok else 1


async def run(settings: CoreSettings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Dispatch one admin command against the configured Redis."""
    async with open_runtime(settings) as rt:
        return await execute(rt.service, args, stdin=sys.stdin, out=out)
