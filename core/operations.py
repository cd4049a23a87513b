"""Admin operations: stats, resets, access lists and the audit log, each audited the same way."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from core import texts
from core.access import AccessControl, valid_entry
from core.audit import AuditLog
from core.chat_settings import ChatSettingsStore
from core.commands import SPECS, Caller, CommandName, CommandRequest, Reply
from core.errors import StoreError
from core.i18n import Translator
from core.personas import Personas
from core.quotas import Quotas
from core.store.protocol import ConversationStore
from core.surfaces import Surface
from core.usage import UsageReport, UsageStats

log = logging.getLogger(__name__)

# What a user id looks like where an admin types one (Slack mentions arrive as U…/W… ids).
_USER_IDS = {"telegram": re.compile(r"-?\d{1,20}"), "slack": re.compile(r"[UW][A-Z0-9]{2,20}")}
_ANY_ID = re.compile(r"[^\s:]{1,100}")


@dataclass
class Operations:
    """What admins can do; authorisation happened before (``core.control``)."""

    store: ConversationStore
    access: AccessControl | None = None
    audit_log: AuditLog | None = None
    usage: UsageStats | None = None
    quotas: Quotas | None = None
    chat_settings: ChatSettingsStore | None = None
    personas: Personas | None = None

    async def audit(self, actor: str, action: str, target: str, detail: str = "") -> None:
        """Record an action; an audit failure is logged, never hidden, never fails the action."""
        log.info("admin action %s on %s by %s", action, target or "-", actor)
        if self.audit_log is not None:
            try:
                await self.audit_log.record(actor, action, target, detail)
            except StoreError as exc:
                log.error("could not write the audit log: %s", exc)

    async def stats(self, t: Translator) -> Reply:
        """What the store holds, how much the bot was used, and in which languages."""
        stored = await self.store.stats()
        report = await self.usage.report() if self.usage is not None else UsageReport()
        picked = await self.chat_settings.persona_counts() if self.chat_settings else None
        return Reply(texts.stats(t, stored, report, picked))

    async def show_personas(self, t: Translator) -> Reply:
        """Every persona and how many chats picked it."""
        personas = self.personas or Personas.plain()
        counts = await self.chat_settings.persona_counts() if self.chat_settings else {}
        return Reply(texts.persona_report(t, personas, counts))

    async def reset_user(self, request: CommandRequest, surface: Surface, t: Translator) -> Reply:
        """Forget every conversation of one user (on the admin's platform, or platform:id)."""
        spec = SPECS[CommandName.RESET_USER]
        target = _target(request.caller, request.argument.lstrip("@"))
        if target is None:
            return Reply(texts.usage_line(t, surface, spec), ok=False)
        platform, user = target
        explicit = ":" in request.argument  # platform:id, as typed in a shell: any id
        pattern = _ANY_ID if explicit else _USER_IDS.get(platform, _ANY_ID)
        if not pattern.fullmatch(user):
            return Reply(texts.bad_user(t, surface, spec, request.argument), ok=False)
        removed = await self.store.clear_user(platform, user)
        await self.audit(request.caller.actor, spec.name, f"{platform}:{user}", str(removed))
        return Reply(texts.removed_of_user(t, removed, user))

    async def reset_chat(self, request: CommandRequest, surface: Surface, t: Translator) -> Reply:
        """Forget every conversation in the chat the admin is in (or platform:chat from a shell)."""
        caller = request.caller
        if caller.chat:
            platform, chat = caller.platform, caller.chat
        else:
            target = _target(caller, request.argument)
            if target is None:
                spec = SPECS[CommandName.RESET_CHAT]
                return Reply(texts.usage_line(t, surface, spec), ok=False)
            platform, chat = target
        removed = await self.store.clear_chat(platform, chat)
        await self.audit(caller.actor, CommandName.RESET_CHAT, f"{platform}:{chat}", str(removed))
        if caller.chat:
            return Reply(texts.removed_in_chat(t, removed))
        return Reply(texts.removed_in_named_chat(t, removed, f"{platform}:{chat}"))

    async def reset_all(self, caller: Caller, t: Translator) -> Reply:
        """Forget everything (only after the asker confirmed)."""
        removed = await self.store.clear_all()
        await self.audit(caller.actor, CommandName.RESET_ALL, "*", str(removed))
        return Reply(texts.removed_all(t, removed))

    async def change_access(self, request: CommandRequest, t: Translator) -> Reply:
        """allow / deny one entry; a bare id means a user on the admin's own platform."""
        entry = request.argument.strip().lstrip("@")
        if entry and ":" not in entry and request.caller.platform not in ("cli", "terminal"):
            entry = f"{request.caller.platform}:{entry}"
        if self.access is None or not valid_entry(entry):
            return Reply(texts.bad_entry(t, request.argument), ok=False)
        if request.name is CommandName.ALLOW:
            await self.access.allow(entry)
        else:
            await self.access.deny(entry)
        await self.audit(request.caller.actor, request.name, entry)
        return Reply(texts.access_changed(t, request.name, entry))

    async def show_access(self, t: Translator) -> Reply:
        """The access mode and both lists."""
        if self.access is None:
            return Reply(texts.bad_entry(t, ""), ok=False)
        allowed, denied = await self.access.lists()
        return Reply(texts.access_lists(t, self.access.mode, allowed, denied))

    async def show_audit(self, request: CommandRequest, t: Translator) -> Reply:
        """The newest audit entries (20 by default, 200 at most)."""
        if self.audit_log is None:
            return Reply(texts.audit_lines(t, [], []))
        count = int(request.argument) if request.argument.isdigit() else 20
        entries = await self.audit_log.recent(max(1, min(count, 200)))
        when = [time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.at)) for e in entries]
        return Reply(texts.audit_lines(t, entries, when))


def _target(caller: Caller, argument: str) -> tuple[str, str] | None:
    """`123` (this platform) or `platform:123` (from a shell, or another platform) → parts."""
    argument = argument.strip()
    if not argument:
        return None
    platform, sep, ident = argument.partition(":")
    if sep and platform and ident:
        return platform, ident
    if caller.platform in ("cli", "terminal"):
        return None  # a shell serves every platform: it must say which
    return caller.platform, argument
