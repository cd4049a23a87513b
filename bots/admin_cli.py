"""`parley admin`: operators reset, inspect and control access from the shell (same Redis)."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import TextIO

from bots.runtime import Runtime, open_runtime
from core.access import valid_entry
from core.errors import ConfigError
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
    audit = actions.add_parser("audit", help="who did what, when")
    audit.add_argument("--limit", type=int, default=50)


def _split(value: str, flag: str) -> tuple[str, str]:
    """`platform:id` → (platform, id), or a ConfigError naming the flag."""
    platform, _, ident = value.partition(":")
    if not platform or not ident:
        raise ConfigError(f"{flag} takes platform:id, e.g. telegram:123 (got {value!r})")
    return platform, ident


def _confirm(question: str, stdin: TextIO, out: TextIO) -> bool:
    """Ask on a terminal; a script must pass --yes."""
    if not stdin.isatty():
        out.write("refusing without confirmation: add --yes\n")
        return False
    out.write(f"{question} [y/N] ")
    out.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


async def _reset(rt: Runtime, args: argparse.Namespace, actor: str, out: TextIO) -> int:
    """`parley admin reset`."""
    service = rt.service
    if args.user:
        platform, user = _split(args.user, "--user")
        removed = await service.reset_user(platform, user, actor=actor)
    elif args.chat:
        platform, chat = _split(args.chat, "--chat")
        removed = await service.reset_chat(platform, chat, actor=actor)
    else:
        if not args.yes and not _confirm("Forget EVERY conversation?", sys.stdin, out):
            return 1
        removed = await service.reset_all(actor=actor)
    out.write(f"removed {removed} conversation(s)\n")
    return 0


async def _stats(rt: Runtime, out: TextIO) -> int:
    """`parley admin stats`."""
    stored = await rt.service.stats()
    report = await rt.service.usage_report()
    out.write(f"conversations stored: {stored.conversations} ({stored.messages} messages)\n")
    for platform, count in sorted(stored.by_platform.items()):
        out.write(f"  {platform}: {count} conversations\n")
    for title, period in (("today (UTC)", report.today), ("total", report.total)):
        out.write(f"{title}:\n")
        if not period:
            out.write("  no turns yet\n")
        for platform, u in period.items():
            out.write(
                f"  {platform}: {u.users} users, {u.turns} turns, "
                f"{u.tokens_in} tokens in, {u.tokens_out} tokens out\n"
            )
    return 0


async def _access(rt: Runtime, args: argparse.Namespace, actor: str, out: TextIO) -> int:
    """`parley admin allow|deny|access`."""
    access = rt.service.access
    assert access is not None
    if args.admin_command == "access":
        allowed, denied = await access.lists()
        out.write(f"mode: {access.mode.value}\nallowed: {', '.join(allowed) or '-'}\n")
        out.write(f"denied: {', '.join(denied) or '-'}\n")
        return 0
    entry = args.entry.strip()
    if not valid_entry(entry):
        raise ConfigError(f"{entry!r} is not platform:user_id, platform:chat:ID or slack:team:ID")
    if args.admin_command == "allow":
        await access.allow(entry)
    else:
        await access.deny(entry)
    await rt.service._audit(actor, args.admin_command, entry, "")
    out.write(f"{args.admin_command}: {entry}\n")
    return 0


async def _audit(rt: Runtime, args: argparse.Namespace, out: TextIO) -> int:
    """`parley admin audit`."""
    audit = rt.service.audit
    assert audit is not None
    for entry in await audit.recent(args.limit):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.at))
        detail = f" ({entry.detail})" if entry.detail else ""
        out.write(f"{when} UTC  {entry.actor}  {entry.action}  {entry.target}{detail}\n")
    return 0


async def run(settings: CoreSettings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Dispatch one admin command against the configured Redis."""
    actor = f"cli:{getpass.getuser()}"
    async with open_runtime(settings) as rt:
        command = args.admin_command
        if command == "reset":
            return await _reset(rt, args, actor, out)
        if command == "stats":
            return await _stats(rt, out)
        if command in ("allow", "deny", "access"):
            return await _access(rt, args, actor, out)
        return await _audit(rt, args, out)
