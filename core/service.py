"""What adapters hold: submit a turn, execute a command, shut down; nothing else of the core."""

from __future__ import annotations

from dataclasses import dataclass

from core.commands import Caller, CommandRequest, Reply, TurnRequest
from core.control import Commands
from core.conversation import IncomingMessage
from core.lifecycle import Lifecycle
from core.metrics import Metrics
from core.phrases import Phrases
from core.results import TurnResult
from core.settings import CoreSettings
from core.sink import MessageSink
from core.turn_runner import TurnRunner


@dataclass
class ChatService:
    """The core as adapters see it: turns go through one admission, commands through one router."""

    settings: CoreSettings
    runner: TurnRunner
    commands: Commands
    lifecycle: Lifecycle

    @property
    def metrics(self) -> Metrics:
        """Prometheus metrics of turns and replies."""
        return self.runner.metrics

    @property
    def phrases(self) -> Phrases:
        """The notices the core writes into replies."""
        return self.runner.phrases

    async def phrases_for(self, caller: Caller) -> Phrases:
        """The notices in this person's language, for what an adapter says on its own (a
        sticker it cannot read, a stale button)."""
        return self.runner.phrases.in_language(await self.commands.languages.translator(caller))

    async def handle(self, message: IncomingMessage, sink: MessageSink) -> TurnResult:
        """A person's message: admitted, queued in order, answered and remembered."""
        return await self.submit(TurnRequest.of(message), sink)

    async def submit(self, request: TurnRequest, sink: MessageSink) -> TurnResult:
        """Any turn (a message, a retry): the only way to the model."""
        return await self.runner.submit(request, sink)

    async def command(self, request: CommandRequest) -> Reply:
        """A command, authorised and audited by the core; the reply says what to show."""
        return await self.commands.execute(request)

    async def shutdown(self, grace_seconds: float) -> None:
        """Take no new turns; let running replies finish, then end them with a note."""
        await self.lifecycle.shutdown(grace_seconds)
