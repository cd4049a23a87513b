"""Conversation memory: the protocol, its Redis implementation and an in-memory one."""

from core.store.protocol import ConversationStore

__all__ = ["ConversationStore"]
