"""Which Slack events Parley answers, and what they say once Slack's markup is undone."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from bots.slack.settings import ThreadScope
from bots.slack.sink import ReplyTarget
from core.conversation import ConversationKey

PLATFORM = "slack"
# Subtypes that are still a person writing: a file with a caption, a reply also sent to channel.
_PERSON_SUBTYPES = frozenset({"file_share", "thread_broadcast"})
_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]+)(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!([a-z]+)(?:\^[^|>]*)?(?:\|([^>]*))?>")
_LINK = re.compile(r"<((?:https?|mailto|tel):[^|>]+)(?:\|([^>]*))?>")


class Route(StrEnum):
    """How a message reached Parley."""

    DIRECT = "direct"  # a DM
    MENTION = "mention"  # @parley in a channel
    FOLLOW_UP = "follow_up"  # a reply in a thread, answered only if Parley is part of it


@dataclass(frozen=True, slots=True)
class Inbound:
    """A person's message Parley may answer, normalised."""

    route: Route
    team: str
    channel: str
    user: str
    ts: str
    thread_ts: str | None  # the thread it was written in (None: top level)
    text: str
    has_files: bool = False
    dm_threads: bool = False  # answer DMs in a thread too (native streams are thread replies)
    assistant: bool = False  # a thread of Slack's assistant pane: a conversation of its own

    @property
    def is_dm(self) -> bool:
        """A direct message."""
        return self.route is Route.DIRECT

    @property
    def reply_thread(self) -> str | None:
        """Where the reply goes: its thread, or a new thread under it; a DM's top stays the top."""
        if self.is_dm and not self.dm_threads:
            return self.thread_ts
        return self.thread_ts or self.ts

    def key(self, scope: ThreadScope) -> ConversationKey:
        """The conversation this message continues; each assistant thread is its own."""
        if self.assistant:
            return ConversationKey(PLATFORM, self.channel, self.user, self.thread_ts or self.ts)
        return conversation_key(
            scope, channel=self.channel, user=self.user, thread=self.reply_thread, dm=self.is_dm
        )

    def target(self) -> ReplyTarget:
        """Where the reply is written; in DMs the assistant status follows the same thread."""
        target = reply_target(
            team=self.team,
            channel=self.channel,
            user=self.user,
            thread=self.reply_thread,
            dm=self.is_dm,
            anchor=self.ts,
        )
        return replace(target, assistant=True) if self.assistant else target


def conversation_key(
    scope: ThreadScope, *, channel: str, user: str, thread: str | None, dm: bool
) -> ConversationKey:
    """History is per user per thread, or per thread when SLACK_THREAD_SCOPE=thread.

    A DM is one conversation: its top-level messages and the threads the answers go into
    (native streams always answer in a thread) continue each other.
    """
    if dm:
        return ConversationKey(PLATFORM, channel, user)
    shared = scope is ThreadScope.THREAD
    return ConversationKey(PLATFORM, channel, "" if shared else user, thread or "")


def reply_target(
    *, team: str, channel: str, user: str, thread: str | None, dm: bool, anchor: str | None
) -> ReplyTarget:
    """A reply target; `anchor` is the message a DM's assistant status hangs off."""
    status_thread = (thread or anchor) if dm else None
    return ReplyTarget(team, channel, thread, user, status_thread)


def is_dm_channel(channel: str) -> bool:
    """DM conversation ids start with D."""
    return channel.startswith("D")


def normalise_text(text: str, bot_user_id: str) -> str:
    """Slack markup → what a person meant: mentions, channels, links and escapes undone."""
    text = text.replace(f"<@{bot_user_id}>", " ").strip()
    text = _USER.sub(lambda m: f"@{m.group(1)}", text)
    text = _CHANNEL.sub(lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = _SPECIAL.sub(lambda m: f"@{m.group(2) or m.group(1)}", text)
    text = _LINK.sub(_link, text)
    return html.unescape(text).strip()


def _link(match: re.Match[str]) -> str:
    """<url|label> → "label (url)"; a bare <url> → url."""
    url, label = match.group(1), match.group(2)
    return f"{label} ({url})" if label and label != url else url


def _from_person(event: Mapping[str, Any], bot_user_id: str) -> bool:
    """Not a bot (ours or another), not an edit, deletion, join or other subtype."""
    if event.get("bot_id") or event.get("bot_profile") or event.get("hidden"):
        return False
    user = event.get("user")
    if not user or user == bot_user_id:
        return False
    subtype = event.get("subtype")
    return subtype is None or subtype in _PERSON_SUBTYPES


def _build(
    event: Mapping[str, Any], route: Route, team: str, bot_user_id: str, dm_threads: bool = False
) -> Inbound:
    """The common fields of both event kinds."""
    thread_ts = event.get("thread_ts")
    return Inbound(
        route=route,
        team=str(event.get("team") or team),
        channel=str(event["channel"]),
        user=str(event["user"]),
        ts=str(event["ts"]),
        thread_ts=str(thread_ts) if thread_ts else None,
        text=normalise_text(str(event.get("text") or ""), bot_user_id),
        has_files=bool(event.get("files")),
        dm_threads=dm_threads,
    )


def from_message(
    event: Mapping[str, Any], *, team: str, bot_user_id: str, dm_threads: bool = False
) -> Inbound | None:
    """A `message` event: DMs, and thread replies that may continue a conversation."""
    if not _from_person(event, bot_user_id) or not event.get("channel") or not event.get("ts"):
        return None
    if event.get("channel_type") == "im":
        return _build(event, Route.DIRECT, team, bot_user_id, dm_threads)
    if not event.get("thread_ts"):
        return None  # top-level channel chatter; mentions arrive as app_mention
    if f"<@{bot_user_id}>" in str(event.get("text") or ""):
        return None  # the app_mention event for the same message answers it
    return _build(event, Route.FOLLOW_UP, team, bot_user_id)


def from_edit(
    event: Mapping[str, Any], *, team: str, bot_user_id: str, dm_threads: bool = False
) -> tuple[Inbound, str] | None:
    """A `message_changed` event of a person's own message whose text changed, with the edit's
    version (its edited.ts); unfurls and other changes that keep the text are not edits."""
    if event.get("subtype") != "message_changed":
        return None
    message = event.get("message")
    previous = event.get("previous_message") or {}
    if not isinstance(message, Mapping) or not isinstance(message.get("edited"), Mapping):
        return None
    if message.get("text") == previous.get("text"):
        return None
    changed = {
        **message,
        "channel": event.get("channel"),
        "channel_type": event.get("channel_type"),
        "subtype": None,
        "hidden": None,
    }
    version = str(message["edited"].get("ts") or "")
    if not _from_person(changed, bot_user_id) or not changed.get("channel") or not version:
        return None
    if changed.get("channel_type") == "im":
        return _build(changed, Route.DIRECT, team, bot_user_id, dm_threads), version
    if f"<@{bot_user_id}>" in str(changed.get("text") or "") and not changed.get("thread_ts"):
        return _build(changed, Route.MENTION, team, bot_user_id), version
    if not changed.get("thread_ts"):
        return None
    return _build(changed, Route.FOLLOW_UP, team, bot_user_id), version


def from_mention(event: Mapping[str, Any], *, team: str, bot_user_id: str) -> Inbound | None:
    """An `app_mention` event: answered in a thread under the mention."""
    if not _from_person(event, bot_user_id) or event.get("edited"):
        return None
    if not event.get("channel") or not event.get("ts"):
        return None
    return _build(event, Route.MENTION, team, bot_user_id)
