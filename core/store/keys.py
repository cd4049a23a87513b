"""Redis key names: one hash tag per conversation, so every key of it lives on one cluster slot.

Bot-wide keys a single command touches (budgets, audit, marks, usage counters) need no tag;
keys written together (the access lists) share one, so no script or transaction ever spans
two slots of a Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.conversation import ConversationKey

_ESCAPES = {c: f"%{ord(c):02X}" for c in "%|{}*?[]\\: "}


def _escape(part: str) -> str:
    """Make an id safe inside a key and inside a SCAN MATCH pattern."""
    return "".join(_ESCAPES.get(c, c) for c in part)


@dataclass(frozen=True, slots=True)
class KeySpace:
    """Builds every key Parley writes, under one prefix (so several bots can share a Redis)."""

    prefix: str = "parley"

    def tag(self, key: ConversationKey) -> str:
        """The hash tag naming one conversation."""
        parts = (key.platform, key.chat, key.thread, key.user)
        return "{" + "|".join(_escape(p) for p in parts) + "}"

    def history(self, key: ConversationKey) -> str:
        """The list of messages."""
        return f"{self.prefix}:{self.tag(key)}:h"

    def lock(self, key: ConversationKey) -> str:
        """The one-turn-at-a-time lease."""
        return f"{self.prefix}:{self.tag(key)}:lock"

    def saved(self, key: ConversationKey, turn_id: str) -> str:
        """Marks a turn as stored, so a retried save does not store it twice."""
        return f"{self.prefix}:{self.tag(key)}:saved:{_escape(turn_id)}"

    def fence(self, key: ConversationKey) -> str:
        """The newest lease grant's fencing token: only the turn holding it may save."""
        return f"{self.prefix}:{self.tag(key)}:fence"

    def running(self, key: ConversationKey) -> str:
        """Set while a turn runs; still there at the next turn means that turn's process died."""
        return f"{self.prefix}:{self.tag(key)}:running"

    def stop(self, key: ConversationKey) -> str:
        """A stop request for the running turn, seen by whichever replica runs it."""
        return f"{self.prefix}:{self.tag(key)}:stop"

    def history_pattern(
        self, platform: str | None = None, chat: str | None = None, user: str | None = None
    ) -> str:
        """A SCAN MATCH pattern for history keys; ids are escaped so they never act as globs."""
        p = _escape(platform) if platform is not None else "*"
        c = _escape(chat) if chat is not None else "*"
        u = _escape(user) if user is not None else "*"
        # chat|thread|user: thread is free, so a chat match pins the 2nd part, a user the last.
        return f"{self.prefix}:{{{p}|{c}|*|{u}}}:h"

    def platform_of(self, history_key: str) -> str:
        """The platform part of a history key (for per-platform stats)."""
        inner = history_key.split("{", 1)[-1]
        return inner.split("|", 1)[0].replace("%7C", "|")

    def access_list(self, kind: Literal["allow", "deny"]) -> str:
        """The allow or the deny list, both under one hash tag: an entry moves between them in
        one transaction, on one Redis or a Cluster."""
        return f"{self.prefix}:{{access}}:{kind}"

    def named(self, *parts: str) -> str:
        """A non-conversation key (dedup, budgets, counters) under the same prefix."""
        return ":".join((self.prefix, *parts))

    def chat_settings(self, platform: str, chat: str) -> str:
        """One chat's settings (a hash), under a hash tag of its own."""
        return f"{self.prefix}:{{settings|{_escape(platform)}|{_escape(chat)}}}"

    def language(self, platform: str, user: str) -> str:
        """The language a person chose with /language, under a hash tag of its own."""
        return f"{self.prefix}:{{language|{_escape(platform)}|{_escape(user)}}}"

    def budget(self, group: str, owner: str, *parts: str) -> str:
        """A pacing budget; all of one ``owner``'s (a bot's, a workspace's) share a hash tag,
        so one script takes every budget of a write, on one Redis or a Cluster."""
        tag = f"{{{_escape(group)}|{_escape(owner)}}}"
        return ":".join((self.prefix, tag, *(_escape(p) for p in parts)))

    def answer(self, answer_id: str) -> str:
        """One answer's record (its conversation, owner and messages), found by the buttons."""
        return f"{self.prefix}:answer:{_escape(answer_id)}"

    def latest_answer(self, key: ConversationKey) -> str:
        """The id of the conversation's newest answer: only its buttons still act."""
        return f"{self.prefix}:{self.tag(key)}:answer"

    def stop_sequence(self) -> str:
        """Counts stop requests bot-wide, so a replica polls one key instead of every turn's."""
        return f"{self.prefix}:{{stops}}:seq"
