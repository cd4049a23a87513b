"""Commands as a person sends them, for tests that drive the core directly."""

from __future__ import annotations

from core.commands import Caller, CommandName, CommandRequest, Reply
from core.conversation import ConversationKey
from core.results import TurnResult
from core.service import ChatService
from core.sink import MessageSink


def caller_of(key: ConversationKey, user: str | None = None) -> Caller:
    """The person whose conversation ``key`` is."""
    return Caller(key.platform, user if user is not None else key.user, key.chat)


async def run(
    service: ChatService,
    name: CommandName,
    key: ConversationKey,
    *args: str,
    user: str | None = None,
) -> Reply:
    """One command in ``key``'s conversation, by its owner (or ``user``)."""
    request = CommandRequest(name, caller_of(key, user), key=key, args=args)
    return await service.command(request)


async def stop(service: ChatService, key: ConversationKey) -> bool:
    """/stop; True if a reply was running."""
    reply = await run(service, CommandName.STOP, key)
    return not reply.text


async def retry(
    service: ChatService, key: ConversationKey, sink: MessageSink, *, user: str | None = None
) -> TurnResult:
    """/retry, streamed into ``sink`` the way an adapter would."""
    reply = await run(service, CommandName.RETRY, key, user=user)
    assert reply.turn is not None, reply
    return await service.submit(reply.turn, sink)
