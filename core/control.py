"""Commands, decided once: authorisation, confirmation, execution, audit and the reply text.

Adapters parse platform input into a ``CommandRequest`` and draw the ``Reply``; nothing about
who may do what, or what it says, is decided anywhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from core import texts
from core.admins import Admins
from core.chat_commands import ChatCommands
from core.chat_settings import ChatScope
from core.commands import (
    SPECS,
    Caller,
    CommandName,
    CommandRequest,
    Question,
    Reply,
    TurnKind,
    TurnRequest,
)
from core.confirmations import Pending, PendingActions
from core.controls import AnswerControls
from core.errors import BotError
from core.i18n import Translator
from core.languages import Languages
from core.marks import OnceMarks
from core.operations import Operations
from core.phrases import Phrases
from core.quotas import Quotas, QuotaUsage
from core.store.protocol import ConversationStore
from core.surfaces import SURFACES, Surface
from core.turns import TurnCoordinator

log = logging.getLogger(__name__)

# Refusal notices a person may have been given (``core.admission``), cleared by /forget.
_NOTICE_KINDS = ("quota", "busy", "queue")
# Commands that change or destroy data for everyone: asked first, answered by the asker only.
_CONFIRMED = frozenset({CommandName.RESET_ALL})


class UserData(Protocol):
    """Anything else that keeps per-person data (an adapter's memory) and must obey /forget."""

    async def forget_user(self, platform: str, user: str) -> None:
        """Delete what is kept about this person on this platform."""
        ...


@dataclass
class Commands:
    """Runs one command for one person and says what happened."""

    store: ConversationStore
    turns: TurnCoordinator
    operations: Operations
    admins: Admins
    pending: PendingActions | None = None
    quotas: Quotas | None = None
    marks: OnceMarks | None = None
    user_data: list[UserData] = field(default_factory=list)  # adapters add their memories
    chat: ChatCommands | None = None  # personas and instructions (None: not offered)
    languages: Languages = field(default_factory=Languages)  # who is answered in which language
    controls: AnswerControls | None = None  # the buttons under answers (None: not offered)

    def surface(self, platform: str) -> Surface:
        """How commands are typed where this person is."""
        return SURFACES.get(platform, SURFACES["terminal"])

    def is_admin(self, request: CommandRequest) -> bool:
        """The one admin check: ADMIN_IDS against the verified sender, or the host's shell."""
        return self.admins(request.caller.platform, request.caller.user_id)

    async def unknown(self, caller: Caller, word: str) -> Reply:
        """A word that names no command here, said in the person's language."""
        t = await self.languages.translator(caller)
        return Reply(texts.unknown(t, self.surface(caller.platform), word), ok=False)

    async def execute(self, request: CommandRequest) -> Reply:
        """Authorise, run and audit one command; a failure is a reply, never an exception."""
        spec = SPECS[request.name]
        t = await self.languages.translator(request.caller)
        if spec.admin and not self.is_admin(request):
            log.warning("refused %s to %s (not an admin)", request.name, request.caller.actor)
            return Reply(t.gettext(texts.NOT_ADMIN), ok=False)
        try:
            return await self._run(request, t)
        except BotError as exc:
            log.error("%s by %s failed: %s", request.name, request.caller.actor, exc)
            return Reply(t.gettext(exc.user_message), ok=False)

    async def _run(self, request: CommandRequest, t: Translator) -> Reply:
        """Dispatch to the command's code."""
        name = request.name
        surface = self.surface(request.caller.platform)
        ops = self.operations
        if name is CommandName.START:
            return Reply(texts.start(t, surface))
        if name is CommandName.HELP:
            specs = surface.specs(admin=self.is_admin(request))
            return Reply(texts.help_text(t, surface, specs))
        if name is CommandName.RESET:
            return await self._reset(request, t)
        if name is CommandName.STOP:
            return await self._stop(request, t)
        if name is CommandName.RETRY:
            return self._retry(request, t)
        if name is CommandName.FORGET:
            return await self._forget(request, t)
        if name is CommandName.USAGE:
            return await self._usage(request, t)
        if name is CommandName.LANGUAGE:
            return await self.languages.command(request, surface)
        if name in (CommandName.PERSONA, CommandName.INSTRUCTIONS):
            if self.chat is None:
                return Reply(texts.unknown(t, surface, name.value), ok=False)
            if name is CommandName.PERSONA:
                return await self.chat.persona(request, surface, t)
            return await self.chat.instructions(request, surface, t)
        if name is CommandName.CONFIRM:
            return await self._answer(request, surface, t)
        if name is CommandName.CONTROL:
            if self.controls is None:
                return Reply(Phrases().in_language(t).stale_button, ok=False, settles=False)
            return await self.controls.press(request, Phrases().in_language(t))
        if name in _CONFIRMED:
            return await self._ask(request, t)
        if name is CommandName.STATS:
            return await ops.stats(t)
        if name is CommandName.RESET_USER:
            return await ops.reset_user(request, surface, t)
        if name is CommandName.RESET_CHAT:
            return await ops.reset_chat(request, surface, t)
        if name in (CommandName.ALLOW, CommandName.DENY):
            return await ops.change_access(request, t)
        if name is CommandName.ACCESS:
            return await ops.show_access(t)
        if name is CommandName.PERSONAS:
            return await ops.show_personas(t)
        return await ops.show_audit(request, t)

    # -- the person's own conversation ------------------------------------------------------

    async def _reset(self, request: CommandRequest, t: Translator) -> Reply:
        """Forget this conversation's messages."""
        if request.key is None:
            return Reply(t.gettext(texts.NO_CONVERSATION), ok=False)
        forgotten = await self.store.clear(request.key)
        return Reply(t.gettext(texts.RESET_DONE if forgotten else texts.RESET_NOTHING))

    async def _stop(self, request: CommandRequest, t: Translator) -> Reply:
        """Stop the answer being written here (wherever it runs); the reply itself says ⏹."""
        if request.key is None or not await self.turns.signal_stop(request.key, "stopped"):
            return Reply(t.gettext(texts.NOTHING_RUNNING))
        return Reply()

    def _retry(self, request: CommandRequest, t: Translator) -> Reply:
        """Answer the last message again: a turn that goes through admission like any other."""
        if request.key is None:
            return Reply(t.gettext(texts.NO_CONVERSATION), ok=False)
        turn = TurnRequest(request.key, request.caller, TurnKind.RETRY)
        return Reply(t.gettext(texts.RETRYING), turn=turn)

    async def _forget(self, request: CommandRequest, t: Translator) -> Reply:
        """Delete everything kept about this person on this platform: history, limits, marks."""
        caller = request.caller
        removed = await self.store.clear_user(caller.platform, caller.user_id)
        if self.quotas is not None:
            await self.quotas.forget(caller.platform, caller.user_id)
        if self.operations.access is not None:
            await self.operations.access.forget_refusal(caller.platform, caller.user_id)
        if self.marks is not None:
            for kind in _NOTICE_KINDS:
                await self.marks.clear("notice", kind, caller.platform, caller.user_id)
        for data in self.user_data:
            await data.forget_user(caller.platform, caller.user_id)
        if self.chat is not None:  # the private chat's persona and instructions
            await self.chat.store.delete(ChatScope.private(caller.platform, caller.user_id))
        await self.languages.forget(caller.platform, caller.user_id)
        await self.operations.audit(caller.actor, CommandName.FORGET, caller.actor, str(removed))
        return Reply(texts.forgotten(t, removed, caller.platform))

    async def _usage(self, request: CommandRequest, t: Translator) -> Reply:
        """The person's own consumption and what is left of their limits."""
        caller = request.caller
        quotas = self.quotas
        spent = (
            await quotas.usage(caller.platform, caller.user_id)
            if quotas is not None
            else QuotaUsage(0, 0)
        )
        return Reply(
            texts.usage(
                t,
                spent,
                per_minute=quotas.messages_per_minute if quotas is not None else 0,
                per_day=quotas.tokens_per_day if quotas is not None else 0,
                admin=self.is_admin(request),
                resets_in=texts.duration(t, quotas.seconds_to_new_day() if quotas else 0),
            )
        )

    # -- confirmation: one rule everywhere ----------------------------------------------------

    async def _ask(self, request: CommandRequest, t: Translator) -> Reply:
        """Store the question; only the asker's yes within two minutes runs the command."""
        if self.pending is None:  # no Redis to keep the question in: nothing destructive
            return Reply(t.gettext(texts.NOT_ADMIN), ok=False)
        pending = Pending(request.name, request.caller.actor, request.args)
        ident = await self.pending.ask(pending)
        question = Question(ident, t.gettext(texts.RESET_ALL_YES), t.gettext(texts.RESET_ALL_NO))
        return Reply(t.gettext(texts.RESET_ALL_QUESTION), question=question)

    async def _answer(self, request: CommandRequest, surface: Surface, t: Translator) -> Reply:
        """A yes or no to a question: expired, not the asker's, cancelled, or done."""
        ident, answer = (*request.args, "", "")[:2]
        pending = await self.pending.peek(ident) if self.pending is not None and ident else None
        if pending is None:
            return Reply(texts.expired(t, surface, CommandName.RESET_ALL), ok=False)
        if pending.asker != request.caller.actor or not self.is_admin(request):
            log.warning("%s tried to answer %s's question", request.caller.actor, pending.asker)
            return Reply(t.gettext(texts.ONLY_ASKER), ok=False, settles=False)
        assert self.pending is not None
        if not await self.pending.take(ident):  # answered a moment ago, elsewhere
            return Reply(texts.expired(t, surface, pending.action), ok=False)
        if answer != "yes":
            return Reply(t.gettext(texts.CANCELLED))
        return await self.operations.reset_all(request.caller, t)
