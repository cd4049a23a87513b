"""A fake Telegram Bot API on loopback that keeps state and enforces Telegram's rules.

python-telegram-bot reaches it through its base URL (`TELEGRAM_API_URL`), so the adapter runs
against it unchanged. The fake answers with Telegram's own error bodies (length, entities,
"message is not modified", flood control with ``retry_after``), remembers every chat's messages
with their full edit history, and lets tests inject updates: what the tests assert on is what a
user would see.

Rate rules are Telegram's (about one write per second per chat, 20 per minute in groups, ~30 per
second overall); ``time_scale`` shrinks every window so tests stay fast, and ``jitter`` is the
leniency Telegram shows in practice (two writes a few milliseconds closer than the window are
tolerated).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from tests.support.logs import fake_server_logger
from tests.support.timing import patient

JSON = dict[str, Any]

MAX_TEXT_UTF16 = 4096
MAX_CALLBACK_DATA = 64  # bytes of an inline button's callback_data
MAX_CALLBACK_ANSWER = 200  # characters of answerCallbackQuery's text
MAX_INLINE_RESULTS = 50  # results in one answerInlineQuery
MAX_RESULT_ID = 64  # bytes of an inline result's id
INLINE_ANSWER_WINDOW = 10.0  # seconds an inline query may be answered in (scaled by time_scale)
NEVER_STARTED = "Forbidden: bot can't initiate conversation with a user"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)
SECRET_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def utf16_len(text: str) -> int:
    """Telegram counts text in UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class ApiError(Exception):
    """An error the fake answers with, in Telegram's body format."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def bad_request(description: str) -> ApiError:
    """Telegram's 400 with its 'Bad Request: ' prefix."""
    return ApiError(400, f"Bad Request: {description}")


@dataclass(frozen=True, slots=True)
class User:
    """A Telegram user (or bot) the tests talk as."""

    id: int
    first_name: str
    username: str | None = None
    is_bot: bool = False
    language_code: str | None = None  # the IETF tag of the user's app language, e.g. "zh-hans"

    def to_dict(self) -> JSON:
        data: JSON = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        if self.username:
            data["username"] = self.username
        if self.language_code:
            data["language_code"] = self.language_code
        return data


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat as Telegram describes it: private, group or supergroup (optionally a forum)."""

    id: int
    type: str
    title: str | None = None
    first_name: str | None = None
    username: str | None = None
    is_forum: bool = False

    def to_dict(self) -> JSON:
        data: JSON = {"id": self.id, "type": self.type}
        if self.title:
            data["title"] = self.title
        if self.first_name:
            data["first_name"] = self.first_name
        if self.username:
            data["username"] = self.username
        if self.is_forum:
            data["is_forum"] = True
        return data


@dataclass(slots=True)
class Version:
    """One state of a message: what it showed from ``at`` on."""

    text: str
    entities: list[JSON]
    at: float


@dataclass(slots=True)
class FakeMessage:
    """A message in a chat with its current content and every earlier version."""

    chat: Chat
    message_id: int
    sender: User
    date: int
    text: str
    entities: list[JSON]
    thread_id: int | None = None
    reply_to: FakeMessage | None = None
    reply_markup: JSON | None = None
    kind: str = "text"  # text, sticker, photo, voice, document
    history: list[Version] = field(default_factory=list)
    deleted: bool = False
    edit_date: int = 0  # when it was last edited (Unix time), as Telegram reports it

    @property
    def from_bot(self) -> bool:
        return self.sender.is_bot

    @property
    def edits(self) -> int:
        """How many times the message was changed after it was sent."""
        return len(self.history) - 1

    def to_dict(self, *, with_reply: bool = True) -> JSON:
        """The Bot API's Message object."""
        data: JSON = {
            "message_id": self.message_id,
            "from": self.sender.to_dict(),
            "chat": self.chat.to_dict(),
            "date": self.date,
        }
        if self.thread_id is not None:
            data["message_thread_id"] = self.thread_id
            if self.chat.is_forum:
                data["is_topic_message"] = True
        if self.kind == "text":
            data["text"] = self.text
            if self.entities:
                data["entities"] = self.entities
        else:
            if self.text:
                data["caption"] = self.text
                if self.entities:
                    data["caption_entities"] = self.entities
            data.update(_media(self.kind, self.message_id))
        if self.edits:
            data["edit_date"] = self.edit_date or self.date
        if self.reply_markup:
            data["reply_markup"] = self.reply_markup
        if with_reply and self.reply_to is not None:
            data["reply_to_message"] = self.reply_to.to_dict(with_reply=False)
        return data


def _media(kind: str, seed: int) -> JSON:
    """Minimal but valid media objects for non-text messages."""
    file = {"file_id": f"{kind}-{seed}", "file_unique_id": f"u{kind}{seed}"}
    if kind == "sticker":
        return {
            "sticker": {
                **file,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
        }
    if kind == "photo":
        return {"photo": [{**file, "width": 90, "height": 90}]}
    if kind == "voice":
        return {"voice": {**file, "duration": 3}}
    return {"document": {**file, "file_name": "notes.pdf"}}


@dataclass(slots=True)
class InlineMessage:
    """A message a user sent "via @bot" from an inline result; the bot edits it by its id only."""

    inline_message_id: str
    chat: Chat  # where it was sent (the bot is never told; its flood rules still apply)
    sender: User
    text: str
    entities: list[JSON]
    reply_markup: JSON | None = None
    history: list[Version] = field(default_factory=list)


@dataclass(slots=True)
class InlineQuery:
    """An inline query a user typed, open for answers for a few seconds."""

    id: str
    user: User
    query: str
    chat_type: str
    opened_at: float
    answer: JSON | None = None


@dataclass(slots=True)
class ApiCall:
    """One request the bot made, with its parsed parameters and the outcome."""

    method: str
    params: JSON
    at: float
    ok: bool = True
    error_code: int = 0
    description: str = ""
    forced: bool = False

    @property
    def chat_id(self) -> int | None:
        raw = self.params.get("chat_id")
        return int(raw) if raw is not None else None


@dataclass(slots=True)
class ChatState:
    """Everything the fake knows about one chat."""

    chat: Chat
    messages: dict[int, FakeMessage] = field(default_factory=dict)
    next_message_id: int = 1
    writes: deque[float] = field(default_factory=deque)
    tokens: float | None = None  # the per-chat bucket; full until first used
    refilled_at: float = 0.0
    forced_until: float = 0.0
    forced_seconds: int = 0
    drafts: dict[int, list[Version]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RateRules:
    """Telegram's flood limits; ``time_scale`` shrinks the windows for tests.

    Per chat, Telegram allows about one write per second but tolerates short bursts and
    network jitter, then answers 429 to a sustained faster rate: a token bucket refilling one
    write per ``per_chat_window`` with ``per_chat_burst`` writes of slack. Groups add a strict
    sliding window (20 writes per minute), the bot as a whole another (~30 per second).
    """

    per_chat_window: float = 1.0  # about one write per second in any chat
    per_chat_burst: int = 3
    group_limit: int = 20  # writes per group window
    group_window: float = 60.0
    global_limit: int = 30  # writes per second across all chats
    global_window: float = 1.0
    time_scale: float = 1.0
    jitter: float = 0.05  # seconds of leniency, not scaled
    enabled: bool = True


@dataclass(slots=True)
class Pending:
    """An update waiting to be confirmed; a redelivered copy is sent once whatever the offset."""

    update: JSON
    redelivery: bool = False
    handed_out: bool = False


@dataclass(slots=True)
class Webhook:
    """A registered webhook the fake pushes updates to."""

    url: str
    secret_token: str | None
    allowed_updates: list[str] | None = None


@dataclass(slots=True)
class Delivery:
    """One POST of an update to the webhook and the status it got."""

    update_id: int
    status: int


class FakeTelegram:
    """The fake Bot API server; `await start()` returns the API root URL."""

    def __init__(
        self,
        *,
        token: str = "123456789:AAF-fake-token_for_tests",
        bot_username: str = "parley_test_bot",
        rules: RateRules | None = None,
    ) -> None:
        self.token = token
        bot_id = int(token.split(":", 1)[0])
        self.bot = User(bot_id, "Parley", bot_username, is_bot=True)
        self.rules = rules or RateRules()
        self.chats: dict[int, ChatState] = {}
        self.calls: list[ApiCall] = []
        self.commands: dict[str, list[JSON]] = {}  # by scope, for every language
        # by (scope, language_code): the menus users whose app speaks that language see
        self.localized_commands: dict[tuple[str, str], list[JSON]] = {}
        self.callback_answers: dict[str, JSON] = {}
        self.users: dict[int, User] = {}  # everyone who wrote somewhere (getChatMember knows them)
        self.member_status: dict[tuple[int, int], str] = {}  # (chat, user) → creator, …
        self.reject_entities = False  # answer any formatted text with "can't parse entities"
        self._scripted: defaultdict[str, deque[ApiError]] = defaultdict(deque)
        self._open_queries: set[str] = set()
        self.webhook: Webhook | None = None
        self.deliveries: list[Delivery] = []
        self.url = ""
        self._pending: list[Pending] = []  # updates not yet confirmed, in arrival order
        self._update_ids = itertools.count(10_000)
        self._user_ids = itertools.count(1_000)
        self._group_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self.inline_queries: dict[str, InlineQuery] = {}
        self.inline_messages: dict[str, InlineMessage] = {}
        self._inline_ids = itertools.count(1)
        self._global_writes: deque[float] = deque()
        self._changed = asyncio.Condition()
        self._poll_generation = 0
        self._runner: web.AppRunner | None = None
        self._pusher: asyncio.Task[None] | None = None
        self._push_session: ClientSession | None = None
        self._clock: Callable[[], float] = time.monotonic

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on loopback; returns the API root (the bot calls `{root}/bot{token}/{m}`)."""
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, logger=fake_server_logger("telegram")
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None)
        assert sockets
        bound_port = sockets[0].getsockname()[1]
        self.url = f"http://{host}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        """Stop pushing and listening."""
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher
            self._pusher = None
        if self._push_session is not None:
            await self._push_session.close()
            self._push_session = None
        async with self._changed:
            self._poll_generation += 1
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- what a user sees ------------------------------------------------------------------

    def state(self, chat: Chat | int) -> ChatState:
        """The chat's state (created on first use)."""
        chat_id = chat if isinstance(chat, int) else chat.id
        if chat_id not in self.chats:
            if isinstance(chat, Chat):
                self.chats[chat_id] = ChatState(chat)
            elif chat_id > 0:
                self.chats[chat_id] = ChatState(Chat(chat_id, "private", first_name="User"))
            else:
                raise bad_request("chat not found")
        return self.chats[chat_id]

    def messages(
        self, chat: Chat | int, *, thread: int | None = None, include_deleted: bool = False
    ) -> list[FakeMessage]:
        """All messages of a chat (or of one topic) in order."""
        state = self.state(chat)
        return [
            m
            for m in state.messages.values()
            if (include_deleted or not m.deleted) and (thread is None or m.thread_id == thread)
        ]

    def bot_messages(
        self, chat: Chat | int, *, thread: int | None = None, include_deleted: bool = False
    ) -> list[FakeMessage]:
        """The bot's messages in a chat (or one topic), as the user sees them now."""
        return [
            m
            for m in self.messages(chat, thread=thread, include_deleted=include_deleted)
            if m.from_bot
        ]

    def bot_texts(self, chat: Chat | int, *, thread: int | None = None) -> list[str]:
        """The current text of every bot message in the chat."""
        return [m.text for m in self.bot_messages(chat, thread=thread)]

    def last_bot_message(self, chat: Chat | int, *, thread: int | None = None) -> FakeMessage:
        """The newest visible bot message."""
        found = self.bot_messages(chat, thread=thread)
        if not found:
            raise AssertionError(f"the bot has not written in chat {chat}")
        return found[-1]

    def drafts(self, chat: Chat | int) -> dict[int, list[Version]]:
        """Every draft the bot streamed to a private chat, with each state it showed."""
        return self.state(chat).drafts

    def errors(self, *, method: str | None = None, code: int | None = None) -> list[ApiCall]:
        """Requests the fake refused."""
        return [
            c
            for c in self.calls
            if not c.ok
            and (method is None or c.method == method.lower())
            and (code is None or c.error_code == code)
        ]

    def flood_errors(self) -> list[ApiCall]:
        """429s the bot earned by writing too fast (not the ones a test forced)."""
        return [c for c in self.errors(code=429) if not c.forced]

    def calls_to(self, method: str, chat: Chat | int | None = None) -> list[ApiCall]:
        """Requests of one method, optionally for one chat."""
        chat_id = chat if isinstance(chat, int) or chat is None else chat.id
        return [
            c
            for c in self.calls
            if c.method == method.lower() and (chat_id is None or c.chat_id == chat_id)
        ]

    async def wait_for(
        self, predicate: Callable[[], bool], *, timeout: float | None = None, what: str = ""
    ) -> None:
        """Wait until the fake's state satisfies ``predicate`` (by default for patient(10) s)."""
        timeout = patient(10.0) if timeout is None else timeout

        async def waiter() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        try:
            await asyncio.wait_for(waiter(), timeout)
        except TimeoutError:
            message = f"timed out after {timeout} s waiting for {what or predicate}"
            raise AssertionError(message) from None

    def queued(self) -> int:
        """Updates the bot has not fetched yet (polling) or not accepted yet (webhook)."""
        return sum(1 for p in self._pending if not p.handed_out)

    async def settle(self, quiet: float = 0.3, *, timeout: float = 30.0) -> None:
        """Wait until the bot has made no request for ``quiet`` seconds."""
        deadline = self._clock() + timeout
        while self._clock() < deadline:
            last = self.calls[-1].at if self.calls else 0.0
            await asyncio.sleep(quiet)
            if (self.calls[-1].at if self.calls else 0.0) == last:
                return
        raise AssertionError("the bot never went quiet")

    # -- switches --------------------------------------------------------------------------

    def force_retry_after(self, chat: Chat | int, seconds: int) -> None:
        """Answer every write to this chat with 429 retry_after=seconds for that long."""
        state = self.state(chat)
        state.forced_seconds = seconds
        state.forced_until = self._clock() + seconds

    def fail_next(
        self,
        method: str,
        code: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with this error (e.g. 401, 429, 502)."""
        parameters = {"retry_after": retry_after} if retry_after is not None else None
        errors = (ApiError(code, description, parameters) for _ in range(times))
        self._scripted[method.lower()].extend(errors)

    def delete_message(self, chat: Chat | int, message_id: int) -> None:
        """The user (or an admin) deletes a message; later edits of it fail."""
        self.state(chat).messages[message_id].deleted = True

    # -- users, chats, updates -------------------------------------------------------------

    def new_user(
        self,
        first_name: str = "Alice",
        *,
        username: str | None = None,
        language_code: str | None = None,
    ) -> User:
        """A fresh user with a unique id (and their app's language, if given)."""
        user = User(next(self._user_ids), first_name, username, language_code=language_code)
        self.users[user.id] = user
        return user

    def set_member_status(self, chat: Chat, user: User, status: str) -> None:
        """Make ``user`` a ``creator``, ``administrator``, ``member`` … of ``chat``."""
        assert status in MEMBER_STATUSES, status
        self.users[user.id] = user
        self.member_status[(chat.id, user.id)] = status

    def private_chat(self, user: User) -> Chat:
        """The private chat between ``user`` and the bot."""
        chat = Chat(user.id, "private", first_name=user.first_name, username=user.username)
        self.state(chat)
        return chat

    def new_group(self, title: str = "Team", *, forum: bool = False, basic: bool = False) -> Chat:
        """A supergroup (optionally a forum) or a basic group the bot is in."""
        n = next(self._group_ids)
        chat_id = -(n if basic else 1_000_000_000_000 + n)
        chat = Chat(chat_id, "group" if basic else "supergroup", title=title, is_forum=forum)
        self.state(chat)
        return chat

    def message(
        self,
        chat: Chat,
        user: User,
        text: str = "",
        *,
        entities: list[JSON] | None = None,
        thread: int | None = None,
        reply_to: FakeMessage | None = None,
        kind: str = "text",
    ) -> FakeMessage:
        """Record a message a user wrote (not yet delivered to the bot).

        Without explicit ``entities`` the fake finds @mentions and a leading /command, as
        Telegram's server does for messages typed in a client.
        """
        state = self.state(chat)
        if entities is None:
            entities = detect_entities(text)
        message = FakeMessage(
            chat=chat,
            message_id=state.next_message_id,
            sender=user,
            date=int(time.time()),
            text=text,
            entities=entities or [],
            thread_id=thread,
            reply_to=reply_to,
            kind=kind,
        )
        message.history.append(Version(text, message.entities, self._clock()))
        state.next_message_id += 1
        state.messages[message.message_id] = message
        self.users.setdefault(user.id, user)
        return message

    async def push(self, update: JSON, *, redelivery: bool = False) -> JSON:
        """Queue an update for getUpdates or the webhook; returns it (for redelivery)."""
        async with self._changed:
            self._pending.append(Pending(update, redelivery))
            self._changed.notify_all()
        return update

    async def deliver(self, message: FakeMessage, *, edited: bool = False) -> JSON:
        """Wrap a message in an update and queue it."""
        key = "edited_message" if edited else "message"
        return await self.push({"update_id": next(self._update_ids), key: message.to_dict()})

    async def redeliver(self, update: JSON) -> JSON:
        """Queue the very same update (same update_id) again, as Telegram does after a failure."""
        return await self.push(json.loads(json.dumps(update)), redelivery=True)

    async def private_text(self, user: User, text: str) -> JSON:
        """``user`` writes ``text`` to the bot in private."""
        return await self.deliver(self.message(self.private_chat(user), user, text))

    async def group_text(
        self,
        chat: Chat,
        user: User,
        text: str,
        *,
        mention: bool = False,
        thread: int | None = None,
        reply_to: FakeMessage | None = None,
    ) -> JSON:
        """``user`` writes in a group; with ``mention`` the text starts with @bot."""
        if mention:
            text = f"@{self.bot.username} {text}"
        return await self.deliver(self.message(chat, user, text, thread=thread, reply_to=reply_to))

    async def group_mention(
        self, chat: Chat, user: User, text: str, *, thread: int | None = None
    ) -> JSON:
        """``user`` mentions the bot in a group (or a topic)."""
        return await self.group_text(chat, user, text, mention=True, thread=thread)

    async def reply_to_bot(
        self, chat: Chat, user: User, bot_message: FakeMessage, text: str
    ) -> JSON:
        """``user`` replies to one of the bot's messages."""
        return await self.group_text(
            chat, user, text, reply_to=bot_message, thread=bot_message.thread_id
        )

    async def topic_message(
        self, chat: Chat, user: User, thread: int, text: str, *, mention: bool = True
    ) -> JSON:
        """``user`` writes in a forum topic."""
        return await self.group_text(chat, user, text, mention=mention, thread=thread)

    async def command(
        self,
        chat: Chat,
        user: User,
        command: str,
        args: str = "",
        *,
        addressed: bool = True,
        thread: int | None = None,
    ) -> JSON:
        """``user`` sends ``/command args``; in groups addressed as /command@bot."""
        name = command.lstrip("/")
        head = f"/{name}"
        if addressed and chat.type != "private":
            head += f"@{self.bot.username}"
        text = f"{head} {args}".rstrip()
        entities = [{"type": "bot_command", "offset": 0, "length": utf16_len(head)}]
        return await self.deliver(self.message(chat, user, text, entities=entities, thread=thread))

    async def media(
        self,
        chat: Chat,
        user: User,
        kind: str = "sticker",
        *,
        caption: str = "",
        caption_entities: list[JSON] | None = None,
    ) -> JSON:
        """``user`` sends a sticker, photo (optionally captioned), voice or document."""
        return await self.deliver(
            self.message(chat, user, caption, entities=caption_entities, kind=kind)
        )

    async def edit_user_message(self, message: FakeMessage, text: str) -> JSON:
        """The user edits an earlier message (Telegram sends edited_message)."""
        message.text = text
        message.edit_date = int(time.time())
        message.history.append(Version(text, message.entities, self._clock()))
        return await self.deliver(message, edited=True)

    async def other_bot_text(self, chat: Chat, text: str) -> JSON:
        """Another bot writes in the chat."""
        other = User(next(self._user_ids), "Other", "other_bot", is_bot=True)
        return await self.deliver(self.message(chat, other, text))

    async def press_button(self, user: User, message: FakeMessage, data: str) -> JSON:
        """``user`` presses an inline button carrying ``data`` under ``message``."""
        query_id = str(next(self._callback_ids))
        self.callback_answers.pop(query_id, None)
        update = {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": query_id,
                "from": user.to_dict(),
                "chat_instance": f"ci{message.chat.id}",
                "data": data,
                "message": message.to_dict(),
            },
        }
        self._open_queries.add(query_id)
        return await self.push(update)

    async def press_inline_button(self, user: User, inline: InlineMessage, data: str) -> JSON:
        """``user`` presses a button under an inline message (the query names no message)."""
        query_id = str(next(self._callback_ids))
        update = {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": query_id,
                "from": user.to_dict(),
                "chat_instance": f"ci{inline.chat.id}",
                "data": data,
                "inline_message_id": inline.inline_message_id,
            },
        }
        self._open_queries.add(query_id)
        return await self.push(update)

    async def inline_query(self, user: User, query: str, *, chat_type: str = "supergroup") -> str:
        """``user`` types ``@bot query`` in a chat of ``chat_type``; returns the query's id."""
        query_id = f"iq{next(self._inline_ids)}"
        self.users.setdefault(user.id, user)
        self.inline_queries[query_id] = InlineQuery(query_id, user, query, chat_type, self._clock())
        await self.push(
            {
                "update_id": next(self._update_ids),
                "inline_query": {
                    "id": query_id,
                    "from": user.to_dict(),
                    "query": query,
                    "offset": "",
                    "chat_type": chat_type,
                },
            }
        )
        return query_id

    async def choose_inline_result(
        self, query_id: str, chat: Chat, *, index: int = 0
    ) -> InlineMessage | None:
        """The user sends result ``index`` of the query's answer into ``chat``.

        Telegram tells the bot (chosen_inline_result, with inline feedback on) and gives an
        inline_message_id only when the result carries an inline keyboard; None then.
        """
        query = self.inline_queries[query_id]
        assert query.answer is not None, "the bot never answered the inline query"
        result = _json_list(query.answer.get("results"))[index]
        content = result["input_message_content"]
        markup = result.get("reply_markup")
        inline = InlineMessage(
            f"im{next(self._inline_ids)}AAAA{query_id}",
            chat,
            query.user,
            str(content["message_text"]),
            list(content.get("entities") or []),
            reply_markup=markup,
        )
        inline.history.append(Version(inline.text, inline.entities, self._clock()))
        chosen: JSON = {
            "result_id": result["id"],
            "from": query.user.to_dict(),
            "query": query.query,
        }
        if markup:
            self.inline_messages[inline.inline_message_id] = inline
            chosen["inline_message_id"] = inline.inline_message_id
        await self.push({"update_id": next(self._update_ids), "chosen_inline_result": chosen})
        return inline if markup else None

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.path
        if not path.startswith("/bot") or path.count("/") != 2:
            return _error(ApiError(404, "Not Found"))
        token, _, method = path[4:].partition("/")
        if ":" not in token or not token.split(":", 1)[0].isdigit():
            return _error(ApiError(404, "Not Found"))
        if token != self.token:
            return _error(ApiError(401, "Unauthorized"))
        params = await _read_params(request)
        name = method.lower()
        call = ApiCall(name, params, self._clock())
        handler = getattr(self, f"_m_{name}", None)
        try:
            scripted = self._scripted.get(name)
            if scripted:
                call.forced = True
                raise scripted.popleft()
            if handler is None:
                raise ApiError(404, "Not Found")
            result = await handler(params, call)
        except ApiError as exc:
            call.ok = False
            call.error_code = exc.code
            call.description = exc.description
            self.calls.append(call)
            await self._notify()
            return _error(exc)
        self.calls.append(call)
        await self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- methods ---------------------------------------------------------------------------

    async def _m_getme(self, params: JSON, call: ApiCall) -> JSON:
        return {
            **self.bot.to_dict(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": True,  # /setinline at @BotFather
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_getupdates(self, params: JSON, call: ApiCall) -> list[JSON]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int(params.get("offset"), 0)
        limit = max(1, min(100, _int(params.get("limit"), 100)))
        timeout = max(0.0, float(params.get("timeout") or 0))
        async with self._changed:
            self._poll_generation += 1
            generation = self._poll_generation
            self._changed.notify_all()  # an older long poll ends with 409, as on Telegram
            self._confirm(offset)
            deadline = self._clock() + timeout
            while not self._available(offset):
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
                if self._poll_generation != generation:
                    raise ApiError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    )
            batch = self._available(offset)[:limit]
            for entry in batch:
                entry.handed_out = True
            return [entry.update for entry in batch]

    def _available(self, offset: int) -> list[Pending]:
        """What getUpdates returns: every unconfirmed update, and redeliveries not yet sent."""
        return [
            p
            for p in self._pending
            if p.update["update_id"] >= offset or (p.redelivery and not p.handed_out)
        ]

    def _confirm(self, offset: int) -> None:
        """getUpdates with ``offset`` confirms every update with a smaller id."""
        if offset:
            self._pending = [
                p
                for p in self._pending
                if p.update["update_id"] >= offset or (p.redelivery and not p.handed_out)
            ]

    async def _m_setwebhook(self, params: JSON, call: ApiCall) -> bool:
        url = str(params.get("url") or "")
        secret = params.get("secret_token")
        if secret is not None:
            secret = str(secret)
            if not 1 <= len(secret) <= 256 or not set(secret) <= SECRET_ALPHABET:
                raise bad_request("secret token contains unallowed characters")
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self._pending.clear()
        if not url:
            self.webhook = None
            return True
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        allowed = params.get("allowed_updates")
        self.webhook = Webhook(url, secret, _json_list(allowed) if allowed else None)
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.get_running_loop().create_task(self._push_loop())
        await self._notify()
        return True

    async def _m_deletewebhook(self, params: JSON, call: ApiCall) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates") in (True, "true", "True"):
            self._pending.clear()
        return True

    async def _m_getwebhookinfo(self, params: JSON, call: ApiCall) -> JSON:
        return {
            "url": self.webhook.url if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    async def _m_setmycommands(self, params: JSON, call: ApiCall) -> bool:
        commands = _json_list(params.get("commands"))
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            name = str(command.get("command", ""))
            if not 1 <= len(name) <= 32 or not all(
                c.isdigit() or c == "_" or ("a" <= c <= "z") for c in name
            ):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
        language = str(params.get("language_code") or "")
        if language and not (len(language) == 2 and language.isascii() and language.isalpha()):
            raise bad_request("LANGUAGE_CODE_INVALID")  # an ISO 639-1 code, two letters
        key = _scope_key(params)
        if language:
            self.localized_commands[(key, language.lower())] = commands
        else:
            self.commands[key] = commands
        return True

    async def _m_getmycommands(self, params: JSON, call: ApiCall) -> list[JSON]:
        key = _scope_key(params)
        language = str(params.get("language_code") or "").lower()
        if language:
            return self.localized_commands.get((key, language), [])
        return self.commands.get(key, [])

    async def _m_getchatmember(self, params: JSON, call: ApiCall) -> JSON:
        """A ChatMember object of the subtype its status names, as the Bot API answers."""
        state = self._chat(params)
        raw = params.get("user_id")
        try:
            user_id = int(raw) if raw is not None and raw != "" else 0
        except ValueError:
            raise bad_request("user not found") from None
        user = self.users.get(user_id)
        if user is None:
            raise bad_request("user not found")
        status = self.member_status.get((state.chat.id, user_id), "member")
        return {"status": status, "user": user.to_dict(), **MEMBER_STATUSES[status]}

    async def _m_sendchataction(self, params: JSON, call: ApiCall) -> bool:
        state = self._chat(params)
        state.actions.append(str(params.get("action")))
        return True

    async def _m_answercallbackquery(self, params: JSON, call: ApiCall) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        if query_id not in self._open_queries:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        if len(str(params.get("text") or "")) > MAX_CALLBACK_ANSWER:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        self.callback_answers[query_id] = params
        return True

    async def _m_answerinlinequery(self, params: JSON, call: ApiCall) -> bool:
        """Only within the query's window, once, with at most 50 well-formed results."""
        query = self.inline_queries.get(str(params.get("inline_query_id") or ""))
        window = INLINE_ANSWER_WINDOW * self.rules.time_scale
        if query is None or query.answer is not None or self._clock() - query.opened_at > window:
            raise bad_request("QUERY_ID_INVALID")
        results = _json_list(params.get("results"))
        if len(results) > MAX_INLINE_RESULTS:
            raise bad_request("RESULTS_TOO_MUCH")
        seen: set[str] = set()
        for result in results:
            _check_inline_result(result, seen)
        query.answer = {**params, "results": results}
        return True

    async def _m_sendmessage(self, params: JSON, call: ApiCall) -> JSON:
        state = self._chat(params)
        text, entities = self._text(params)
        thread = _int(params.get("message_thread_id"), 0) or None
        reply_to = None
        reply = _json_obj(params.get("reply_parameters")) if params.get("reply_parameters") else {}
        reply_id = _int(reply.get("message_id") or params.get("reply_to_message_id"), 0)
        if reply_id:
            reply_to = state.messages.get(reply_id)
            if reply_to is None or reply_to.deleted:
                allow = reply.get("allow_sending_without_reply") or params.get(
                    "allow_sending_without_reply"
                )
                if allow not in (True, "true", "True"):
                    raise bad_request("message to be replied not found")
                reply_to = None
        self._spend(state, call)
        message = FakeMessage(
            chat=state.chat,
            message_id=state.next_message_id,
            sender=self.bot,
            date=int(time.time()),
            text=text,
            entities=entities,
            thread_id=thread,
            reply_to=reply_to,
            reply_markup=_checked_markup(params),
        )
        message.history.append(Version(text, entities, self._clock()))
        state.next_message_id += 1
        state.messages[message.message_id] = message
        return message.to_dict()

    async def _m_editmessagetext(self, params: JSON, call: ApiCall) -> JSON | bool:
        if params.get("inline_message_id"):
            inline = self._inline_message(params)
            text, entities = self._text(params)
            return self._edit_inline(inline, text, entities, _checked_markup(params), call)
        state = self._chat(params)
        message_id = _int(params.get("message_id"), 0)
        text, entities = self._text(params)
        message = state.messages.get(message_id)
        if message is None or message.deleted:
            raise bad_request("message to edit not found")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        markup = _checked_markup(params)  # none given: Telegram removes the inline keyboard
        if text == message.text and entities == message.entities and markup == message.reply_markup:
            raise bad_request(NOT_MODIFIED[len("Bad Request: ") :])
        self._spend(state, call)
        message.text = text
        message.entities = entities
        message.reply_markup = markup
        message.history.append(Version(text, entities, self._clock()))
        return message.to_dict()

    async def _m_editmessagereplymarkup(self, params: JSON, call: ApiCall) -> JSON | bool:
        markup = _checked_markup(params)
        if params.get("inline_message_id"):
            inline = self._inline_message(params)
            return self._edit_inline(inline, inline.text, inline.entities, markup, call)
        state = self._chat(params)
        message = state.messages.get(_int(params.get("message_id"), 0))
        if message is None or message.deleted:
            raise bad_request("message to edit not found")
        if markup == message.reply_markup:
            raise bad_request(NOT_MODIFIED[len("Bad Request: ") :])
        self._spend(state, call)
        message.reply_markup = markup
        return message.to_dict()

    def _inline_message(self, params: JSON) -> InlineMessage:
        """The inline message an edit names; with inline_message_id there is no chat_id."""
        if params.get("chat_id") or params.get("message_id"):
            raise bad_request("can't specify chat_id or message_id together with inline_message_id")
        inline = self.inline_messages.get(str(params["inline_message_id"]))
        if inline is None:
            raise bad_request("MESSAGE_ID_INVALID")
        return inline

    def _edit_inline(
        self,
        inline: InlineMessage,
        text: str,
        entities: list[JSON],
        markup: JSON | None,
        call: ApiCall,
    ) -> bool:
        """Edit an inline message under the flood rules of the chat it was sent to."""
        if text == inline.text and entities == inline.entities and markup == inline.reply_markup:
            raise bad_request(NOT_MODIFIED[len("Bad Request: ") :])
        self._spend(self.state(inline.chat), call)
        inline.text, inline.entities, inline.reply_markup = text, entities, markup
        inline.history.append(Version(text, entities, self._clock()))
        return True  # Telegram answers True, not a Message, for inline messages

    async def _m_deletemessage(self, params: JSON, call: ApiCall) -> bool:
        state = self._chat(params)
        message = state.messages.get(_int(params.get("message_id"), 0))
        if message is None or message.deleted:
            raise bad_request("message to delete not found")
        message.deleted = True
        return True

    async def _m_sendmessagedraft(self, params: JSON, call: ApiCall) -> bool:
        state = self._chat(params)
        if state.chat.type != "private":
            raise bad_request("TEXTDRAFT_PEER_INVALID")
        draft_id = _int(params.get("draft_id"), 0)
        if not draft_id:
            raise bad_request("DRAFT_ID_INVALID")
        if params.get("text"):
            text, entities = self._text(params)
        else:
            text, entities = "", []
        state.drafts.setdefault(draft_id, []).append(Version(text, entities, self._clock()))
        return True

    async def _push_loop(self) -> None:
        """Deliver queued updates to the webhook in order; failed ones are retried."""
        if self._push_session is None:
            self._push_session = ClientSession(timeout=ClientTimeout(total=10))
        session = self._push_session
        while True:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self.webhook is not None and bool(self._pending)
                )
                hook = self.webhook
                entry = self._pending[0]
                update = entry.update
            assert hook is not None
            headers = {}
            if hook.secret_token is not None:
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
            try:
                async with session.post(hook.url, json=update, headers=headers) as response:
                    status = response.status
            except OSError:
                status = 0
            self.deliveries.append(Delivery(update["update_id"], status))
            async with self._changed:
                if 200 <= status < 300 and self._pending and self._pending[0] is entry:
                    self._pending.pop(0)
                self._changed.notify_all()
            if not 200 <= status < 300:
                await asyncio.sleep(0.2)

    def _text(self, params: JSON) -> tuple[str, list[JSON]]:
        if self.reject_entities and params.get("entities"):
            raise bad_request('can\'t parse entities: Unsupported start tag "x" at byte offset 0')
        return _checked_text(params)

    # -- rules -----------------------------------------------------------------------------

    def _chat(self, params: JSON) -> ChatState:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("chat_id is empty")
        try:
            chat_id = int(raw)
        except ValueError:
            raise bad_request("chat not found") from None
        if chat_id not in self.chats:
            if chat_id in self.users:  # a person who never opened the bot's private chat
                raise ApiError(403, NEVER_STARTED)
            raise bad_request("chat not found")
        return self.chats[chat_id]

    def _spend(self, state: ChatState, call: ApiCall) -> None:
        """Count one write against the chat's and the bot's budgets, or answer 429."""
        now = self._clock()
        if state.forced_until > now:
            call.forced = True
            raise _too_many(max(1, math.ceil(state.forced_until - now)))
        rules = self.rules
        if rules.enabled:
            scale = rules.time_scale
            self._take_token(state, now, rules.per_chat_window * scale, rules.per_chat_burst)
            if state.chat.type != "private":
                self._check(state.writes, now, rules.group_limit, rules.group_window * scale)
            self._check(self._global_writes, now, rules.global_limit, rules.global_window * scale)
        if state.tokens is not None:
            state.tokens -= 1
        state.writes.append(now)
        self._global_writes.append(now)
        horizon = max(rules.group_window, rules.per_chat_window) * rules.time_scale + 1
        while state.writes and now - state.writes[0] > horizon:
            state.writes.popleft()
        while self._global_writes and now - self._global_writes[0] > horizon:
            self._global_writes.popleft()

    @staticmethod
    def _take_token(state: ChatState, now: float, interval: float, burst: int) -> None:
        """Refill the chat's bucket; 429 if not even one write is left in it."""
        if state.tokens is None:
            state.tokens = float(burst)
        else:
            state.tokens = min(float(burst), state.tokens + (now - state.refilled_at) / interval)
        state.refilled_at = now
        if state.tokens < 1.0:
            raise _too_many(max(1, math.ceil((1.0 - state.tokens) * interval)))

    def _check(self, writes: deque[float], now: float, limit: int, window: float) -> None:
        """At most ``limit`` writes in any ``window`` (less the jitter Telegram tolerates)."""
        effective = window - self.rules.jitter
        recent = [t for t in writes if now - t < effective]
        if len(recent) >= limit:
            wait = recent[-limit] + window - now
            raise _too_many(max(1, math.ceil(wait)))


# The fields each ChatMember subtype carries besides status and user (all required ones).
MEMBER_STATUSES: dict[str, JSON] = {
    "creator": {"is_anonymous": False},
    "administrator": {
        "can_be_edited": False,
        "is_anonymous": False,
        "can_manage_chat": True,
        "can_delete_messages": True,
        "can_manage_video_chats": True,
        "can_restrict_members": True,
        "can_promote_members": False,
        "can_change_info": True,
        "can_invite_users": True,
        "can_post_stories": False,
        "can_edit_stories": False,
        "can_delete_stories": False,
        "can_pin_messages": True,
    },
    "member": {},
    "left": {},
    "kicked": {"until_date": 0},
}


def _too_many(seconds: int) -> ApiError:
    return ApiError(429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})


def _checked_markup(params: JSON) -> JSON | None:
    """An inline keyboard as Telegram checks it: rows of buttons with text and 1-64 bytes of
    callback data (or a URL)."""
    if not params.get("reply_markup"):
        return None
    markup = _json_obj(params["reply_markup"])
    rows = markup.get("inline_keyboard")
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    for row in rows:
        for button in row:
            if not str(button.get("text") or "").strip():
                raise bad_request("BUTTON_TEXT_INVALID")
            data = button.get("callback_data")
            if data is None and not button.get("url"):
                raise bad_request(
                    "can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise bad_request("BUTTON_DATA_INVALID")
    return markup


def _check_inline_result(result: JSON, seen: set[str]) -> None:
    """One InlineQueryResultArticle as Telegram checks it (the only type Parley sends)."""
    result_id = str(result.get("id") or "")
    if not 1 <= len(result_id.encode()) <= MAX_RESULT_ID:
        raise bad_request("RESULT_ID_INVALID")
    if result_id in seen:
        raise bad_request("RESULT_ID_DUPLICATE")
    seen.add(result_id)
    if result.get("type") != "article":
        raise bad_request("RESULT_TYPE_INVALID")
    if not str(result.get("title") or "").strip():
        raise bad_request("RESULT_TITLE_EMPTY")
    content = result.get("input_message_content")
    if not isinstance(content, dict) or "message_text" not in content:
        raise bad_request("can't parse inline query result: input_message_content is required")
    _checked_text({"text": content["message_text"], "entities": content.get("entities")})
    if result.get("reply_markup"):
        _checked_markup({"reply_markup": result["reply_markup"]})


def _checked_text(params: JSON) -> tuple[str, list[JSON]]:
    """Validate text + entities as Telegram does and return what the chat will show."""
    text = params.get("text")
    if text is None or text == "":
        raise bad_request("message text is empty")
    text = str(text)
    if params.get("parse_mode"):
        raise bad_request("can't parse entities: the fake Bot API only accepts entities")
    raw_entities = params.get("entities")
    entities = [dict(e) for e in _json_list(raw_entities)] if raw_entities else []
    check_entities(text, entities)
    text, entities = _trim(text, entities)
    if not text:
        raise bad_request("message text is empty")
    if utf16_len(text) > MAX_TEXT_UTF16:
        raise bad_request("message is too long")
    return text, entities


_MENTION = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")
_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z][A-Za-z0-9_]{3,31})?")


def detect_entities(text: str) -> list[JSON]:
    """The mention and bot_command entities Telegram adds to what users type."""
    found: list[JSON] = []
    command = _COMMAND.match(text)
    if command:
        found.append({"type": "bot_command", "offset": 0, "length": utf16_len(command.group())})
    for mention in _MENTION.finditer(text):
        if command and mention.start() < command.end():
            continue
        offset = utf16_len(text[: mention.start()])
        found.append({"type": "mention", "offset": offset, "length": utf16_len(mention.group())})
    return found


def _boundaries(text: str) -> set[int]:
    """UTF-16 offsets that fall between characters (never inside a surrogate pair)."""
    offsets = {0}
    position = 0
    for char in text:
        position += 2 if ord(char) > 0xFFFF else 1
        offsets.add(position)
    return offsets


def check_entities(text: str, entities: list[JSON]) -> None:
    """Telegram's documented entity rules: known types, inside the text on character
    boundaries (UTF-16), nested or disjoint, and no quote inside a quote."""
    total = utf16_len(text)
    boundaries = _boundaries(text)
    for entity in entities:
        kind = entity.get("type")
        offset = entity.get("offset")
        length = entity.get("length")
        if kind not in ENTITY_TYPES:
            raise bad_request(f'can\'t parse entities: unsupported entity type "{kind}"')
        if not isinstance(offset, int) or not isinstance(length, int):
            raise bad_request("can't parse entities: entity offset and length must be integers")
        if offset < 0 or length <= 0 or offset + length > total:
            raise bad_request(
                f"can't parse entities: entity {kind} at UTF-16 offset {offset} with length "
                f"{length} is outside of the text of length {total}"
            )
        if offset not in boundaries or offset + length not in boundaries:
            raise bad_request(
                f"can't parse entities: entity {kind} at UTF-16 offset {offset} splits a character"
            )
        if kind == "text_link" and not entity.get("url"):
            raise bad_request("can't parse entities: text_link entity without url")
    # Outer before inner: by start, then the longer first.
    spans = sorted(
        ((e["offset"], e["offset"] + e["length"], e["type"]) for e in entities),
        key=lambda span: (span[0], -span[1]),
    )
    for i, (_, end, kind) in enumerate(spans):
        for other_start, other_end, other in spans[i + 1 :]:
            if other_start >= end:
                break
            if other_end > end:  # shares characters but neither contains the other
                raise bad_request(
                    f"can't parse entities: {kind} and {other} entities partially overlap"
                )
    quotes = sorted(
        (e["offset"], e["offset"] + e["length"])
        for e in entities
        if e["type"] in ("blockquote", "expandable_blockquote")
    )
    for (_, end), (start, _) in itertools.pairwise(quotes):
        if start < end:
            raise bad_request("can't parse entities: blockquotes can't be nested")


def _trim(text: str, entities: list[JSON]) -> tuple[str, list[JSON]]:
    """Telegram strips leading and trailing whitespace and moves the entities with the text."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    if not stripped:
        return "", []
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    end = lead + utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"], lead)
        stop = min(entity["offset"] + entity["length"], end)
        if stop > start:
            kept.append({**entity, "offset": start - lead, "length": stop - start})
    return stripped, kept


async def _read_params(request: web.Request) -> JSON:
    """Parameters from the query string, a form (PTB's way) or a JSON body."""
    params: JSON = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list):
        raise bad_request("can't parse JSON array")
    return value


def _json_obj(value: Any) -> JSON:
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise bad_request("can't parse JSON object")
    return value


def _int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"invalid integer {value!r}") from None


def _error(exc: ApiError) -> web.Response:
    body: JSON = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return web.json_response(body, status=exc.code)


def _scope_key(params: JSON) -> str:
    """A BotCommandScope as a key ("default" for the default scope)."""
    scope = params.get("scope")
    return json.dumps(_json_obj(scope), sort_keys=True) if scope else "default"
