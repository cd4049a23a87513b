"""Buttons under an answer: who may press them, whether the answer is still the newest, and what
pressing does. Stop signals the running turn; Regenerate and Continue become turns that go
through the one admission like any message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.admins import Admins
from core.answers import AnswerBook
from core.commands import CommandRequest, Reply, TurnKind, TurnRequest
from core.phrases import Phrases
from core.sink import Control
from core.turns import TurnCoordinator

log = logging.getLogger(__name__)


@dataclass
class AnswerControls:
    """Decides one button press under an answer."""

    answers: AnswerBook
    turns: TurnCoordinator
    admins: Admins

    async def press(self, request: CommandRequest, phrases: Phrases) -> Reply:
        """``args`` are (control, answer id); a refusal is told to the presser only."""
        word, answer_id = (*request.args, "", "")[:2]
        try:
            control = Control(word)
        except ValueError:
            return Reply(phrases.stale_button, ok=False, settles=False)
        caller = request.caller
        record = await self.answers.get(answer_id) if answer_id else None
        if record is None or record.key.platform != caller.platform:
            return Reply(phrases.too_old, ok=False, settles=False)
        if caller.user_id != record.owner and not self.admins(caller.platform, caller.user_id):
            log.warning("%s pressed %s under someone else's answer", caller.actor, control)
            return Reply(phrases.not_yours, ok=False, settles=False)
        if not await self.answers.is_latest(record):
            return Reply(phrases.too_old, ok=False, settles=False)
        if control is Control.STOP:
            if not await self.turns.signal_stop(record.key, "stopped"):
                return Reply(phrases.too_old, ok=False, settles=False)
            return Reply()
        if not record.saved or (control is Control.CONTINUE and not record.continuable):
            return Reply(phrases.too_old, ok=False, settles=False)
        kind = TurnKind.REGENERATE if control is Control.REGENERATE else TurnKind.CONTINUE
        return Reply(turn=TurnRequest(record.key, caller, kind, answer=record.id))
