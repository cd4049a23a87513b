"""The one gate before the model: access, then quota, for messages, retries and whatever comes next.

Shutdown, the intake bound and the busy policy are checked by the turn runner around this gate
(they need no Redis); every turn of every kind passes all of them, in ``TurnRunner.submit``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from core.access import AccessControl, Subject
from core.admins import Admins
from core.commands import TurnRequest
from core.marks import OnceMarks
from core.phrases import Phrases
from core.quotas import Quotas
from core.texts import duration

log = logging.getLogger(__name__)

NOTICE_EVERY_SECONDS = 60  # a refused person hears why at most once a minute


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a turn may not run, and what to tell the person ('' = nothing this time)."""

    reason: str
    notice: str = ""


class Admission:
    """Access (allow/deny, deny wins), then the quota: a retry counts as a message."""

    def __init__(
        self,
        *,
        admins: Admins,
        phrases: Phrases,
        marks: OnceMarks | None = None,
        access: AccessControl | None = None,
        quotas: Quotas | None = None,
    ) -> None:
        self._admins = admins
        self._phrases = phrases
        self._marks = marks
        self._access = access
        self._quotas = quotas
        self._told = _RecentNotices()

    def is_admin(self, request: TurnRequest) -> bool:
        """Admins are never limited by quotas."""
        return self._admins(request.caller.platform, request.caller.user_id)

    async def admit(self, request: TurnRequest, phrases: Phrases | None = None) -> Refusal | None:
        """None if the turn may run; raises StoreError if Redis cannot say. ``phrases`` are the
        person's, in their language."""
        phrases = phrases or self._phrases
        caller = request.caller
        if self._access is not None:
            subject = Subject(caller.platform, caller.user_id, caller.chat, caller.workspace)
            if not await self._access.allowed(subject):
                log.info("refused %s (access)", caller.actor)
                told = await self._access.first_refusal(subject)
                return Refusal("access", phrases.refused if told else "")
        if self._quotas is not None and not self.is_admin(request):
            verdict = await self._quotas.admit(caller.platform, caller.user_id)
            if not verdict.allowed:
                log.info("refused %s (%s)", caller.actor, verdict.reason)
                reason = (
                    phrases.quota_messages
                    if verdict.reason == "messages_per_minute"
                    else phrases.quota_tokens
                )
                wait = duration(phrases.translator, verdict.wait_seconds)
                text = phrases.over_quota.format(reason=reason, wait=wait)
                return Refusal("quota", await self.once(request, "quota", text))
        return None

    async def once(self, request: TurnRequest, kind: str, text: str) -> str:
        """``text`` the first time this minute for this person and kind of refusal, else ''."""
        return text if await self.first_notice(request, kind) else ""

    async def first_notice(self, request: TurnRequest, kind: str) -> bool:
        """Whether this person is due this kind of refusal notice (at most once a minute)."""
        caller = request.caller
        if not self._told.first(kind, caller.actor, NOTICE_EVERY_SECONDS):
            return False  # this process told them a moment ago: a flood costs no Redis calls
        if self._marks is None:
            return True
        return await self._marks.first(
            "notice", kind, caller.platform, caller.user_id,
            ttl=NOTICE_EVERY_SECONDS, unreachable=False,
        )  # fmt: skip


class _RecentNotices:
    """Notices this process gave lately, so a flood is answered from memory, not from Redis."""

    _PRUNE_AT = 10_000

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], float] = {}

    def first(self, kind: str, actor: str, window: float) -> bool:
        """True unless this process gave ``kind`` to ``actor`` within ``window`` seconds."""
        now = time.monotonic()
        key = (kind, actor)
        if self._until.get(key, 0.0) > now:
            return False
        if len(self._until) >= self._PRUNE_AT:
            self._until = {k: t for k, t in self._until.items() if t > now}
        self._until[key] = now + window
        return True
