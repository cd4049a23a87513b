"""Which language Parley speaks with each person, decided once for every request, and /language.

A person's own choice (`/language <code>`, kept per platform user) wins; otherwise the language
their platform names (Telegram's ``language_code``, Slack's user locale, a terminal's ``LANG``)
if Parley has a catalog for it; otherwise ``DEFAULT_LANGUAGE``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from core import texts
from core.commands import Caller, Choice, CommandName, CommandRequest, Reply
from core.errors import StoreError
from core.i18n import LANGUAGES, SOURCE_LANGUAGE, Translator, match_language, translator
from core.surfaces import Surface

log = logging.getLogger(__name__)


class LanguageChoices(Protocol):
    """Keeps each person's /language choice; removed by `/language auto` and /forget."""

    async def get(self, platform: str, user: str) -> str:
        """The language the person chose ('' if none)."""
        ...

    async def set(self, platform: str, user: str, language: str) -> None:
        """Remember the person's choice."""
        ...

    async def delete(self, platform: str, user: str) -> bool:
        """Forget the person's choice; True if there was one."""
        ...


@dataclass
class Languages:
    """Resolves a request's language and runs /language."""

    choices: LanguageChoices | None = None
    default: str = SOURCE_LANGUAGE

    def platform_language(self, caller: Caller) -> Translator:
        """The language the person's platform names, or the default (no Redis)."""
        return translator(match_language(caller.language) or self.default)

    async def chosen(self, caller: Caller) -> str:
        """The person's own choice; '' if none, or if Redis cannot say (the platform's then)."""
        if self.choices is None:
            return ""
        try:
            chosen = await self.choices.get(caller.platform, caller.user_id)
        except StoreError as exc:
            log.warning("could not read %s's language: %s", caller.actor, exc)
            return ""
        return chosen if chosen in LANGUAGES else ""

    async def translator(self, caller: Caller) -> Translator:
        """The language to answer this request in."""
        chosen = await self.chosen(caller)
        return translator(chosen) if chosen else self.platform_language(caller)

    async def command(self, request: CommandRequest, surface: Surface) -> Reply:
        """No argument: the language in use and the choices; a code: pick it; `auto`: the
        platform's again."""
        caller = request.caller
        wanted = request.argument.strip()
        if wanted.lower() == texts.AUTO_WORD:
            if self.choices is not None:
                await self.choices.delete(caller.platform, caller.user_id)
            t = self.platform_language(caller)
            return Reply(texts.language_auto(t, caller.platform))
        picked = match_language(wanted) if wanted else None
        if picked is None:
            chosen = await self.chosen(caller)
            t = translator(chosen) if chosen else self.platform_language(caller)
            text = texts.language_shown(t, surface, chosen=bool(chosen), unknown=wanted)
            choices = tuple(
                Choice(name, CommandName.LANGUAGE, code, selected=code == t.language)
                for code, name in LANGUAGES.items()
            )
            return Reply(text, ok=not wanted, choices=choices)
        if self.choices is not None:
            await self.choices.set(caller.platform, caller.user_id, picked)
        log.info("%s chose language %s", caller.actor, picked)
        return Reply(texts.language_set(translator(picked)))

    async def forget(self, platform: str, user: str) -> None:
        """/forget: the person's choice goes too."""
        if self.choices is not None:
            await self.choices.delete(platform, user)
