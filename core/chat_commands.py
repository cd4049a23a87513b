"""/persona and /instructions: a chat's own settings, and who may change them.

In a private chat the person decides. In a group or channel the settings belong to the chat
(every member's conversation there follows them): its own admins, as the platform says, and
the bot's admins may change them; everyone may look.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core import texts
from core.admins import Admins
from core.chat_admins import ChatAdmins
from core.chat_settings import MAX_INSTRUCTIONS, ChatScope, ChatSettingsStore
from core.commands import Choice, CommandName, CommandRequest, Reply
from core.i18n import Translator
from core.personas import Personas
from core.surfaces import Surface
from core.text import clean_user_text

log = logging.getLogger(__name__)


@dataclass
class ChatCommands:
    """Shows and changes the caller's chat's persona and instructions."""

    store: ChatSettingsStore
    personas: Personas
    admins: Admins
    chat_admins: ChatAdmins = field(default_factory=ChatAdmins)

    async def may_change(self, request: CommandRequest) -> bool:
        """The person in their private chat; in a group, its admins and the bot's."""
        caller = request.caller
        if not caller.group:
            return True
        if self.admins(caller.platform, caller.user_id):
            return True
        return await self.chat_admins(caller.platform, caller.chat, caller.user_id)

    async def persona(self, request: CommandRequest, surface: Surface, t: Translator) -> Reply:
        """No argument: the list (buttons where possible); an id: switch to it."""
        scope = ChatScope.of(request.caller)
        wanted = request.argument.strip()
        chosen = self.personas.get(wanted) if wanted else None
        if chosen is None:
            return await self._list(request, surface, t, scope, unknown=wanted)
        if not await self.may_change(request):
            return Reply(t.gettext(texts.NOT_CHAT_ADMIN), ok=False, settles=False)
        await self.store.set_persona(scope, chosen.id)
        log.info("%s set persona %s in %s:%s", request.caller.actor, chosen.id, *_where(scope))
        return Reply(texts.persona_set(t, chosen))

    async def _list(
        self,
        request: CommandRequest,
        surface: Surface,
        t: Translator,
        scope: ChatScope,
        *,
        unknown: str,
    ) -> Reply:
        """Every persona, the current one marked; buttons only for those who may switch."""
        current = self.personas.chosen((await self.store.get(scope)).persona)
        may_change = await self.may_change(request)
        text = texts.persona_list(
            t, surface, self.personas, current, may_change=may_change, unknown=unknown
        )
        choices = (
            tuple(
                Choice(p.title, CommandName.PERSONA, p.id, selected=p.id == current.id)
                for p in self.personas
            )
            if may_change
            else ()
        )
        return Reply(text, ok=not unknown, choices=choices)

    async def instructions(self, request: CommandRequest, surface: Surface, t: Translator) -> Reply:
        """No text: show them; `clear`: remove them; any other text: set them."""
        scope = ChatScope.of(request.caller)
        given = clean_user_text(request.text or " ".join(request.args))
        if not given:
            current = (await self.store.get(scope)).instructions
            may_change = await self.may_change(request)
            return Reply(texts.instructions_shown(t, surface, current, may_change=may_change))
        if not await self.may_change(request):
            return Reply(t.gettext(texts.NOT_CHAT_ADMIN), ok=False, settles=False)
        if given.lower() == texts.CLEAR_WORD:
            removed = await self.store.set_instructions(scope, "")
            cleared = texts.INSTRUCTIONS_CLEARED if removed else texts.INSTRUCTIONS_NONE
            return Reply(t.gettext(cleared))
        if len(given) > MAX_INSTRUCTIONS:
            return Reply(texts.instructions_too_long(t, len(given), MAX_INSTRUCTIONS), ok=False)
        await self.store.set_instructions(scope, given)
        log.info("%s set instructions in %s:%s", request.caller.actor, *_where(scope))
        return Reply(t.gettext(texts.INSTRUCTIONS_SAVED))


def _where(scope: ChatScope) -> tuple[str, str]:
    """A scope for log lines."""
    return scope.platform, scope.chat
