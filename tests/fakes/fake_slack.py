"""A fake Slack on loopback: the Web API methods Parley calls, Socket Mode, and signed events.

It keeps what each channel and thread shows (every message with its current text and its edit
history) so tests assert on what users would see, and it enforces Slack's rules with Slack's own
error bodies: bot token checks, length limits, Tier 3 `chat.update` per workspace, about one
`chat.postMessage` per second per channel, native streams that expire, and 429 `ratelimited`
with a `Retry-After` header. Windows are configurable so tests stay fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import math
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from tests.support.logs import fake_server_logger
from tests.support.timing import patient

TEXT_LIMIT = 40_000  # chat.postMessage / chat.update `text`
SECTION_TEXT_LIMIT = 3_000  # section block text
MARKDOWN_BLOCK_LIMIT = 12_000  # markdown block text, per payload
STREAM_TEXT_LIMIT = 12_000  # markdown_text per chat.*Stream call
# Slack wants an ack within 3 s. The fake waits patient(ACK_DEADLINE) for one, so a busy test
# machine cannot fail a delivery; tests that check the ack came at once compare it with when the
# answer came (see Delivery.seconds), not with a wall-clock budget alone.
ACK_DEADLINE = 3.0
MAX_BLOCKS = 50
MAX_ATTACHMENTS = 100
MAX_BUTTON_TEXT = 75  # a button's plain_text
MAX_ACTION_ID = 255
MAX_BUTTON_VALUE = 2_000
MAX_ACTION_ELEMENTS = 25

Json = dict[str, Any]


def unescape(text: str) -> str:
    """What a Slack client displays for escaped mrkdwn."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass
class Message:
    """One message as Slack stores it; `history` holds every text it has shown, oldest first."""

    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    bot_id: str | None = None
    blocks: list[Json] | None = None
    attachments: list[Json] = field(default_factory=list)
    mrkdwn: bool = True
    markdown: bool = False  # a native stream: the text is Markdown that Slack renders itself
    history: list[str] = field(default_factory=list)
    streaming: bool = False
    stream_started: float = 0.0
    deleted: bool = False

    @property
    def is_bot(self) -> bool:
        """Posted by an app rather than a person."""
        return self.bot_id is not None

    @property
    def visible(self) -> str:
        """The text as a user reads it (entities decoded)."""
        return self.text if self.markdown else unescape(self.text)

    @property
    def root(self) -> str:
        """The ts of the thread this message belongs to (its own ts at top level)."""
        return self.thread_ts or self.ts

    @property
    def buttons(self) -> list[Json]:
        """Every button under the message, in its blocks or its attachments' blocks."""
        blocks = [*(self.blocks or ()), *(b for a in self.attachments for b in a.get("blocks", ()))]
        return [
            element
            for block in blocks
            if block.get("type") == "actions"
            for element in block.get("elements", ())
            if element.get("type") == "button"
        ]


@dataclass(frozen=True, slots=True)
class Call:
    """One Web API request as the fake saw it."""

    method: str
    at: float
    args: Json
    ok: bool
    error: str | None
    status: int


class SlidingWindow:
    """At most `limit` calls in any `window` seconds, like Slack's per-minute tiers."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def take(self, now: float) -> float | None:
        """Count a call; None if allowed, else the seconds until one would be."""
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return self._times[0] + self.window - now
        self._times.append(now)
        return None


class SlackApiFailure(Exception):
    """Raised inside a handler to answer with Slack's error body."""

    def __init__(self, error: str, *, status: int = 200, extra: Json | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra or {}


class FakeSlack:
    """The fake Web API server, its Socket Mode endpoint and what every conversation shows."""

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        team_id: str = "T0FAKE",
        app_id: str = "A0PARLEY",
        bot_user_id: str = "U0PARLEY",
        bot_id: str = "B0PARLEY",
        update_limit: int = 50,
        update_window: float = 60.0,
        post_limit: int = 1,
        post_window: float = 1.0,
        stream_limit: int = 100,
        stream_window: float = 60.0,
        stream_lifetime: float = 306.0,
        stream_strips_leading_whitespace: bool = True,
        text_limit: int = TEXT_LIMIT,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.app_id = app_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.text_limit = text_limit
        self.stream_lifetime = stream_lifetime
        # Seen live on Slack: whitespace that starts an appended chunk can be lost at the join.
        self.stream_strips_leading_whitespace = stream_strips_leading_whitespace
        self.messages: list[Message] = []
        self.calls: list[Call] = []
        self.statuses: list[Json] = []
        self.titles: list[Json] = []  # assistant.threads.setTitle calls that succeeded
        self.suggested_prompts: list[Json] = []  # assistant.threads.setSuggestedPrompts
        self.responses: list[Json] = []  # bodies POSTed to response_url
        # Workspace roles users.info reports: "admin", "owner" or "primary_owner"; members
        # are everyone else with a U…/W… id.
        self.roles: dict[str, str] = {}
        # Each user's Slack language, as users.info reports it with include_locale=true.
        self.locales: dict[str, str] = {}
        self.scopes: set[str] = {"users:read"}  # granted OAuth scopes a method may require
        self.socket_connected = asyncio.Event()
        self.socket_acks: list[Json] = []
        self.update_window = SlidingWindow(update_limit, update_window)
        self.stream_window = SlidingWindow(stream_limit, stream_window)
        self._post_limit = (post_limit, post_window)
        self._post_windows: dict[str, SlidingWindow] = {}
        self._forced_limits: dict[str, float] = {}
        self._forced_errors: dict[str, deque[tuple[str, int]]] = defaultdict(deque)
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self._pending_acks: dict[str, asyncio.Future[Json]] = {}
        self.base = ""

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> str:
        """Serve on a free loopback port; returns the Web API base URL (ends with /api/)."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/socket", self._handle_socket)
        app.router.add_post("/respond/{id}", self._handle_response_url)
        self._runner = web.AppRunner(app, access_log=None, logger=fake_server_logger("slack"))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"
        return self.api_url

    async def close(self) -> None:
        """Close sockets and stop serving."""
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL points at."""
        return f"{self.base}/api/"

    def response_url(self) -> str:
        """A response_url for slash commands and button clicks."""
        return f"{self.base}/respond/{uuid.uuid4().hex}"

    # ----------------------------------------------------------------- test controls

    def force_ratelimit(self, method: str, seconds: float) -> None:
        """Answer `method` with 429 ratelimited for the next `seconds`."""
        self._forced_limits[method] = time.monotonic() + seconds

    def force_error(self, method: str, error: str, times: int = 1, *, status: int = 200) -> None:
        """Answer the next `times` calls of `method` with `{"ok": false, "error": error}`
        (HTTP `status`: Slack's errors come with 200, an outage with a 5xx)."""
        self._forced_errors[method].extend([(error, status)] * times)

    def expire_streams(self) -> None:
        """End every native stream now, as Slack does about five minutes after it started."""
        for message in self.messages:
            message.streaming = False

    # ----------------------------------------------------------------- reading state

    def thread(self, channel: str, root_ts: str) -> list[Message]:
        """The thread's root and replies, oldest first (deleted messages are gone)."""
        return [
            m for m in self.messages if m.channel == channel and m.root == root_ts and not m.deleted
        ]

    def bot_replies(self, channel: str, root_ts: str | None = None) -> list[Message]:
        """The bot's messages in a thread (or at the top level of a channel when None)."""
        return [
            m
            for m in self.messages
            if m.channel == channel
            and m.is_bot
            and not m.deleted
            and (m.thread_ts == root_ts if root_ts is not None else m.thread_ts is None)
        ]

    def bot_messages(self) -> list[Message]:
        """Every message the bot has posted anywhere."""
        return [m for m in self.messages if m.is_bot and not m.deleted]

    def calls_to(self, method: str, *, ok: bool | None = None) -> list[Call]:
        """The requests one method received."""
        return [c for c in self.calls if c.method == method and (ok is None or c.ok == ok)]

    @property
    def ratelimited(self) -> int:
        """How many 429s the fake answered."""
        return sum(1 for c in self.calls if c.status == 429)

    def peak(self, method: str, window: float) -> int:
        """The most successful calls of `method` inside any `window` seconds."""
        times = [c.at for c in self.calls_to(method, ok=True)]
        best = 0
        start = 0
        for end, at in enumerate(times):
            while at - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    # ----------------------------------------------------------------- people

    def user_message(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        channel_type: str | None = None,
        files: list[Json] | None = None,
    ) -> Json:
        """A person posts; returns the `message` event Slack would send for it."""
        ts = self._next_ts()
        self.messages.append(
            Message(channel=channel, ts=ts, user=user, text=text, thread_ts=thread_ts)
        )
        event: Json = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "team": self.team_id,
            "client_msg_id": str(uuid.uuid4()),
            "channel_type": channel_type or _channel_type(channel),
        }
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        if files:
            event["subtype"] = "file_share"
            event["files"] = files
        return event

    def mention(self, message_event: Mapping[str, Any]) -> Json:
        """The `app_mention` event Slack sends beside a message that mentions the bot."""
        keep = ("channel", "user", "text", "ts", "event_ts", "team", "client_msg_id", "thread_ts")
        event = {k: message_event[k] for k in keep if k in message_event}
        event["type"] = "app_mention"
        return event

    def edit_event(self, message_event: Mapping[str, Any], new_text: str) -> Json:
        """The `message_changed` event of a person editing a message (the fake's copy changes)."""
        for stored in self.messages:
            if stored.channel == message_event["channel"] and stored.ts == message_event["ts"]:
                stored.text = new_text
                stored.history.append(new_text)
        edited_ts = self._next_ts()
        return {
            "type": "message",
            "subtype": "message_changed",
            "channel": message_event["channel"],
            "hidden": True,
            "ts": self._next_ts(),
            "event_ts": self._next_ts(),
            "channel_type": message_event.get("channel_type", "channel"),
            "message": {
                **message_event,
                "text": new_text,
                "edited": {"user": message_event.get("user"), "ts": edited_ts},
            },
            "previous_message": dict(message_event),
        }

    def event_callback(self, event: Mapping[str, Any], *, event_id: str | None = None) -> Json:
        """An Events API envelope around one event."""
        return {
            "token": "unused-verification-token",
            "team_id": self.team_id,
            "api_app_id": self.app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:12].upper()}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": self.team_id, "user_id": self.bot_user_id, "is_bot": True}
            ],
            "is_ext_shared_channel": False,
        }

    def assistant_thread_event(
        self,
        kind: str,
        *,
        user: str,
        channel: str,
        thread_ts: str,
        context_channel: str | None = None,
    ) -> Json:
        """An ``assistant_thread_started`` or ``assistant_thread_context_changed`` event: the
        person opened the assistant pane (a new thread of their DM with the app) or moved to
        another channel while it is open."""
        assert kind in ("assistant_thread_started", "assistant_thread_context_changed"), kind
        context: Json = {}
        if context_channel is not None:
            context = {"channel_id": context_channel, "team_id": self.team_id}
        return {
            "type": kind,
            "assistant_thread": {
                "user_id": user,
                "context": context,
                "channel_id": channel,
                "thread_ts": thread_ts,
            },
            "event_ts": self._next_ts(),
        }

    def command_payload(
        self, text: str, *, user_id: str, channel_id: str, command: str = "/parley"
    ) -> dict[str, str]:
        """The form fields of a slash command invocation."""
        return {
            "token": "unused-verification-token",
            "team_id": self.team_id,
            "team_domain": "fake",
            "channel_id": channel_id,
            "channel_name": channel_id.lower(),
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "response_url": self.response_url(),
            "trigger_id": uuid.uuid4().hex,
        }

    def action_payload(
        self,
        action_id: str,
        value: str,
        *,
        user_id: str,
        channel_id: str,
        message: Message | None = None,
    ) -> Json:
        """A block_actions payload for a button click (under ``message``, or an ephemeral one)."""
        if message is not None:
            payload = self.action_payload(action_id, value, user_id=user_id, channel_id=channel_id)
            container: Json = {
                "type": "message_attachment" if message.attachments else "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
            }
            if message.thread_ts:
                container["thread_ts"] = message.thread_ts
            payload["container"] = container
            payload["message"] = _as_json(message)
            return payload
        return {
            "type": "block_actions",
            "team": {"id": self.team_id, "domain": "fake"},
            "user": {"id": user_id, "username": user_id.lower(), "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": "unused-verification-token",
            "container": {"type": "message", "is_ephemeral": True},
            "trigger_id": uuid.uuid4().hex,
            "channel": {"id": channel_id, "name": channel_id.lower()},
            "response_url": self.response_url(),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "confirm",
                    "value": value,
                    "action_ts": str(time.time()),
                }
            ],
        }

    # ----------------------------------------------------------------- Socket Mode

    async def push(self, kind: str, payload: Json, *, timeout: float | None = None) -> Json:
        """Send one envelope over the open WebSocket and wait for the app's ack (Slack's 3 s,
        stretched for a busy machine: see ACK_DEADLINE)."""
        timeout = patient(ACK_DEADLINE) if timeout is None else timeout
        await asyncio.wait_for(self.socket_connected.wait(), timeout)
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = future
        ws = next(iter(self._sockets))
        await ws.send_str(json.dumps(envelope))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending_acks.pop(envelope_id, None)

    async def push_event(self, event: Mapping[str, Any], *, event_id: str | None = None) -> Json:
        """An Events API event over Socket Mode."""
        return await self.push("events_api", self.event_callback(event, event_id=event_id))

    async def push_command(self, text: str, *, user_id: str, channel_id: str) -> Json:
        """A slash command over Socket Mode; returns the ack (its payload is the reply)."""
        payload = self.command_payload(text, user_id=user_id, channel_id=channel_id)
        return await self.push("slash_commands", dict(payload))

    async def _handle_socket(self, request: web.Request) -> web.WebSocketResponse:
        """The Socket Mode WebSocket: hello, envelopes out, acks in."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if request.query.get("ticket") != self._ticket:
            await ws.close(code=4001, message=b"invalid ticket")
            return ws
        self._sockets.add(ws)
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._sockets),
                    "connection_info": {"app_id": self.app_id},
                    "debug_info": {"host": "fake-slack", "approximate_connection_time": 3600},
                }
            )
        )
        self.socket_connected.set()
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    ack = json.loads(msg.data)
                    self.socket_acks.append(ack)
                    future = self._pending_acks.get(str(ack.get("envelope_id")))
                    if future is not None and not future.done():
                        future.set_result(ack)
        finally:
            self._sockets.discard(ws)
            if not self._sockets:
                self.socket_connected.clear()
        return ws

    # ----------------------------------------------------------------- HTTP plumbing

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """response_url: Slack accepts the JSON and shows it to the user."""
        body = await request.json()
        self.responses.append(body)
        return web.Response(text="ok")

    async def _handle_api(self, request: web.Request) -> web.Response:
        """One Web API call: parse, authenticate, apply forced errors and limits, dispatch."""
        method = request.match_info["method"]
        args = await _parse_args(request)
        now = time.monotonic()
        try:
            self._authenticate(method, request, args)
            forced = self._forced_errors.get(method)
            if forced:
                error, status = forced.popleft()
                raise SlackApiFailure(error, status=status)
            self._check_rate(method, args, now)
            handler = getattr(self, "_api_" + method.replace(".", "_"), None)
            if handler is None:
                raise SlackApiFailure("unknown_method", status=404)
            result: Json = handler(args)
        except SlackApiFailure as failure:
            self.calls.append(Call(method, now, args, False, failure.error, failure.status))
            headers = {}
            if failure.error == "ratelimited":
                headers["Retry-After"] = str(failure.extra.pop("retry_after", 1))
            body = {"ok": False, "error": failure.error, **failure.extra}
            return web.json_response(body, status=failure.status, headers=headers)
        self.calls.append(Call(method, now, args, True, None, 200))
        return web.json_response({"ok": True, **result})

    def _authenticate(self, method: str, request: web.Request, args: Json) -> None:
        """Slack answers invalid_auth / not_authed with HTTP 200."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header else str(args.get("token", ""))
        if not token:
            raise SlackApiFailure("not_authed")
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if not hmac.compare_digest(token, expected):
            raise SlackApiFailure("invalid_auth")

    def _check_rate(self, method: str, args: Json, now: float) -> None:
        """Forced limits first, then the tier windows."""
        until = self._forced_limits.get(method)
        wait: float | None = None
        if until is not None and now < until:
            wait = until - now
        elif method == "chat.update":
            wait = self.update_window.take(now)
        elif method in ("chat.startStream", "chat.appendStream", "chat.stopStream"):
            wait = self.stream_window.take(now)
        elif method == "chat.postMessage":
            channel = str(args.get("channel", ""))
            window = self._post_windows.setdefault(channel, SlidingWindow(*self._post_limit))
            wait = window.take(now)
        if wait is not None:
            raise SlackApiFailure(
                "ratelimited", status=429, extra={"retry_after": max(1, math.ceil(wait))}
            )

    def _next_ts(self) -> str:
        """Unique, increasing message timestamps in Slack's format."""
        return f"{int(time.time())}.{next(self._seq):06d}"

    @property
    def _ticket(self) -> str:
        """The ticket apps.connections.open hands out."""
        return hashlib.sha256(self.app_token.encode()).hexdigest()[:16]

    def _find(self, channel: str, ts: str) -> Message:
        """A live message or message_not_found."""
        for message in self.messages:
            if message.channel == channel and message.ts == ts and not message.deleted:
                return message
        raise SlackApiFailure("message_not_found")

    def _own(self, channel: str, ts: str) -> Message:
        """A message this bot may edit."""
        message = self._find(channel, ts)
        if message.bot_id != self.bot_id:
            raise SlackApiFailure("cant_update_message")
        return message

    def _attachments(self, args: Json) -> list[Json] | None:
        """The attachments of a post or update (None: left out), checked like Slack does."""
        raw = args.get("attachments")
        if raw is None:
            return None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise SlackApiFailure("invalid_attachments") from None
        if not isinstance(raw, list) or len(raw) > MAX_ATTACHMENTS:
            raise SlackApiFailure("too_many_attachments")
        for attachment in raw:
            if not isinstance(attachment, dict):
                raise SlackApiFailure("invalid_attachments")
            _check_blocks(attachment.get("blocks") or [])
        return raw

    def _content(self, args: Json) -> tuple[str, list[Json] | None]:
        """Text and blocks of a post or update, checked like Slack checks them."""
        text = str(args.get("text") or "")
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                raise SlackApiFailure("invalid_blocks_format") from None
        if blocks is not None:
            _check_blocks(blocks)
        if not text and not blocks:
            raise SlackApiFailure("no_text")
        if len(text) > self.text_limit:
            raise SlackApiFailure("msg_too_long")
        return text, blocks

    def _stream_text(self, args: Json) -> str:
        """markdown_text and markdown_text chunks of a stream call."""
        parts = [str(args["markdown_text"])] if args.get("markdown_text") else []
        chunks = args.get("chunks") or []
        if isinstance(chunks, str):
            chunks = json.loads(chunks)
        for chunk in chunks:
            if not isinstance(chunk, dict) or chunk.get("type") != "markdown_text":
                raise SlackApiFailure("invalid_chunks")
            parts.append(str(chunk.get("text", "")))
        for part in parts:
            if len(part) > STREAM_TEXT_LIMIT:
                raise SlackApiFailure("msg_too_long")
        return "".join(parts)

    def _streaming(self, args: Json) -> Message:
        """A bot message whose stream is still open."""
        message = self._own(str(args.get("channel", "")), str(args.get("ts", "")))
        if message.streaming and time.monotonic() - message.stream_started > self.stream_lifetime:
            message.streaming = False
        if not message.streaming:
            raise SlackApiFailure("message_not_in_streaming_state")
        return message

    def _append(self, message: Message, text: str) -> None:
        """Add streamed text to a message the way Slack joins chunks."""
        if message.text and self.stream_strips_leading_whitespace:
            text = text.lstrip()
        if text:
            message.text += text
            message.history.append(message.text)

    # ----------------------------------------------------------------- methods

    def _api_auth_test(self, args: Json) -> Json:
        return {
            "url": "https://fake.slack.com/",
            "team": "Fake Workspace",
            "user": "parley",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _api_apps_connections_open(self, args: Json) -> Json:
        return {"url": f"{self.base.replace('http', 'ws', 1)}/socket?ticket={self._ticket}"}

    def _api_chat_postMessage(self, args: Json) -> Json:
        channel = str(args.get("channel") or "")
        if not channel:
            raise SlackApiFailure("channel_not_found")
        text, blocks = self._content(args)
        attachments = self._attachments(args) or []
        thread_ts = args.get("thread_ts") or None
        if thread_ts is not None:
            root = self._find(channel, str(thread_ts))
            thread_ts = root.root
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            user=self.bot_user_id,
            text=text,
            thread_ts=thread_ts,
            bot_id=self.bot_id,
            blocks=blocks,
            attachments=attachments,
            mrkdwn=_flag(args.get("mrkdwn"), default=True),
            history=[text],
        )
        self.messages.append(message)
        return {"channel": channel, "ts": message.ts, "message": _as_json(message)}

    def _api_chat_update(self, args: Json) -> Json:
        message = self._own(str(args.get("channel", "")), str(args.get("ts", "")))
        text, blocks = self._content(args)
        attachments = self._attachments(args)
        message.text, message.blocks = text, blocks
        if attachments is not None:  # left out: Slack keeps the attachments it had
            message.attachments = attachments
        message.mrkdwn = _flag(args.get("mrkdwn"), default=True)
        message.markdown = False
        message.history.append(text)
        return {"channel": message.channel, "ts": message.ts, "text": text}

    def _api_chat_delete(self, args: Json) -> Json:
        message = self._own(str(args.get("channel", "")), str(args.get("ts", "")))
        message.deleted = True
        return {"channel": message.channel, "ts": message.ts}

    def _api_chat_startStream(self, args: Json) -> Json:
        channel = str(args.get("channel") or "")
        thread_ts = str(args.get("thread_ts") or "")
        if not channel or not thread_ts:
            raise SlackApiFailure("invalid_arguments")
        for name in ("recipient_user_id", "recipient_team_id"):
            if not args.get(name):
                raise SlackApiFailure(f"missing_{name}")
        root = self._find(channel, thread_ts)
        text = self._stream_text(args)
        message = Message(
            channel=channel,
            ts=self._next_ts(),
            user=self.bot_user_id,
            text=text,
            thread_ts=root.root,
            bot_id=self.bot_id,
            markdown=True,
            history=[text],
            streaming=True,
            stream_started=time.monotonic(),
        )
        self.messages.append(message)
        return {"channel": channel, "ts": message.ts}

    def _api_chat_appendStream(self, args: Json) -> Json:
        message = self._streaming(args)
        self._append(message, self._stream_text(args))
        return {"channel": message.channel, "ts": message.ts}

    def _api_chat_stopStream(self, args: Json) -> Json:
        message = self._streaming(args)
        blocks = args.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if blocks is not None:
            _check_blocks(blocks)
            message.blocks = blocks
        self._append(message, self._stream_text(args))
        message.streaming = False
        return {"channel": message.channel, "ts": message.ts, "message": _as_json(message)}

    def _api_assistant_threads_setStatus(self, args: Json) -> Json:
        for name in ("channel_id", "thread_ts"):
            if not args.get(name):
                raise SlackApiFailure("invalid_arguments")
        if "status" not in args:
            raise SlackApiFailure("invalid_arguments")
        self.statuses.append(
            {k: args.get(k) for k in ("channel_id", "thread_ts", "status", "loading_messages")}
        )
        return {}

    def _api_assistant_threads_setTitle(self, args: Json) -> Json:
        for name in ("channel_id", "thread_ts", "title"):
            if not args.get(name):
                raise SlackApiFailure("invalid_arguments")
        self.titles.append({k: args.get(k) for k in ("channel_id", "thread_ts", "title")})
        return {}

    def _api_assistant_threads_setSuggestedPrompts(self, args: Json) -> Json:
        """1 to 4 prompts, each with a title and a message; an optional title above them."""
        for name in ("channel_id", "thread_ts"):
            if not args.get(name):
                raise SlackApiFailure("invalid_arguments")
        prompts = args.get("prompts")
        if isinstance(prompts, str):
            try:
                prompts = json.loads(prompts)
            except ValueError:
                raise SlackApiFailure("invalid_arguments") from None
        if not isinstance(prompts, list) or not 1 <= len(prompts) <= 4:
            raise SlackApiFailure("invalid_arguments")
        for prompt in prompts:
            if not isinstance(prompt, dict) or not prompt.get("title") or not prompt.get("message"):
                raise SlackApiFailure("invalid_arguments")
        self.suggested_prompts.append(
            {
                "channel_id": args.get("channel_id"),
                "thread_ts": args.get("thread_ts"),
                "title": args.get("title"),
                "prompts": prompts,
            }
        )
        return {}

    def _api_users_info(self, args: Json) -> Json:
        """A user object with the workspace role flags (users:read)."""
        if "users:read" not in self.scopes:
            raise SlackApiFailure(
                "missing_scope", extra={"needed": "users:read", "provided": "chat:write,commands"}
            )
        user = str(args.get("user") or "")
        if not user:
            raise SlackApiFailure("invalid_arguments")
        if user[:1] not in ("U", "W") or user == self.bot_user_id:
            raise SlackApiFailure("user_not_found")
        role = self.roles.get(user, "")
        profile: Json = {
            "id": user,
            "team_id": self.team_id,
            "name": user.lower(),
            "deleted": False,
            "real_name": user.title(),
            "is_bot": False,
            "is_app_user": False,
            "is_admin": role in ("admin", "owner", "primary_owner"),
            "is_owner": role in ("owner", "primary_owner"),
            "is_primary_owner": role == "primary_owner",
            "is_restricted": False,
            "is_ultra_restricted": False,
            "updated": 1_700_000_000,
        }
        if str(args.get("include_locale", "")).lower() in ("true", "1"):
            profile["locale"] = self.locales.get(user, "en-US")
        return {"user": profile}

    def _api_conversations_info(self, args: Json) -> Json:
        channel = str(args.get("channel") or "")
        kind = _channel_type(channel)
        return {
            "channel": {
                "id": channel,
                "is_im": kind == "im",
                "is_channel": kind == "channel",
                "is_private": kind == "group",
            }
        }


def _channel_type(channel: str) -> str:
    """Slack's channel_type from the id's first letter."""
    return {"D": "im", "G": "group", "C": "channel"}.get(channel[:1], "channel")


def _flag(value: object, *, default: bool) -> bool:
    """Booleans arrive as JSON true/false or as form strings."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() in ("1", "true")
    return bool(value)


def _check_blocks(blocks: object) -> None:
    """The block rules Parley could run into: count, section and markdown text lengths."""
    if not isinstance(blocks, list) or len(blocks) > MAX_BLOCKS:
        raise SlackApiFailure("invalid_blocks", extra={"errors": ["too many blocks"]})
    markdown_total = 0
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or "type" not in block:
            raise SlackApiFailure("invalid_blocks_format")
        if block["type"] == "section":
            text = block.get("text") or {}
            if len(str(text.get("text", ""))) > SECTION_TEXT_LIMIT:
                limit = SECTION_TEXT_LIMIT + 1
                error = f"must be less than {limit} characters [json-pointer:/blocks/{i}/text/text]"
                raise SlackApiFailure("invalid_blocks", extra={"errors": [error]})
        if block["type"] == "markdown":
            markdown_total += len(str(block.get("text", "")))
        if block["type"] == "actions":
            _check_actions(i, block)
    if markdown_total > MARKDOWN_BLOCK_LIMIT:
        raise SlackApiFailure("invalid_blocks", extra={"errors": ["markdown text too long"]})


def _check_actions(index: int, block: Json) -> None:
    """An actions block's buttons: how many, and their text, action_id and value lengths."""
    elements = block.get("elements") or []
    if not elements or len(elements) > MAX_ACTION_ELEMENTS:
        error = f"must have 1-{MAX_ACTION_ELEMENTS} elements [json-pointer:/blocks/{index}]"
        raise SlackApiFailure("invalid_blocks", extra={"errors": [error]})
    for element in elements:
        text = str((element.get("text") or {}).get("text", ""))
        if element.get("type") == "button" and not 0 < len(text) <= MAX_BUTTON_TEXT:
            raise SlackApiFailure("invalid_blocks", extra={"errors": ["button text length"]})
        if len(str(element.get("action_id", ""))) > MAX_ACTION_ID:
            raise SlackApiFailure("invalid_blocks", extra={"errors": ["action_id too long"]})
        if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE:
            raise SlackApiFailure("invalid_blocks", extra={"errors": ["value too long"]})


def _as_json(message: Message) -> Json:
    """A message as the API returns it."""
    data: Json = {
        "type": "message",
        "user": message.user,
        "text": message.text,
        "ts": message.ts,
        "bot_id": message.bot_id,
    }
    if message.thread_ts:
        data["thread_ts"] = message.thread_ts
    if message.blocks is not None:
        data["blocks"] = message.blocks
    if message.attachments:
        data["attachments"] = message.attachments
    return data


async def _parse_args(request: web.Request) -> Json:
    """Arguments from the query string and a JSON or form body, as Slack accepts them."""
    args: Json = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                args.update(body)
        else:
            args.update(dict(await request.post()))
    return args


# ===================================================================== talking to the bot


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Slack's v0 request signature."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


Signature = Literal["valid", "forged", "stale", "missing"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The bot's HTTP answer to one request Slack sent it."""

    status: int
    body: str
    seconds: float

    def json(self) -> Json:
        """The body as JSON (slash command replies)."""
        data = json.loads(self.body) if self.body else {}
        return data if isinstance(data, dict) else {}


class SlackSender:
    """Sends what Slack sends an HTTP-mode app: signed events, commands and button clicks."""

    def __init__(self, slack: FakeSlack, url: str, signing_secret: str) -> None:
        self._slack = slack
        self._url = url
        self._secret = signing_secret

    async def event(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        signature: Signature = "valid",
    ) -> Delivery:
        """POST one Events API event, signed as asked; returns the bot's answer."""
        body = json.dumps(self._slack.event_callback(event, event_id=event_id)).encode()
        headers = {"Content-Type": "application/json"}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return await self.post(body, headers, signature=signature)

    async def raw_event(self, envelope: Json, *, retry_num: int | None = None) -> Delivery:
        """POST a prepared envelope (to resend the very same event_id)."""
        headers = {"Content-Type": "application/json"}
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return await self.post(json.dumps(envelope).encode(), headers)

    async def command(
        self, text: str, *, user_id: str, channel_id: str, signature: Signature = "valid"
    ) -> Delivery:
        """POST a /parley invocation as Slack's form body."""
        fields = self._slack.command_payload(text, user_id=user_id, channel_id=channel_id)
        body = urlencode(fields).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return await self.post(body, headers, signature=signature)

    async def action(
        self,
        action_id: str,
        value: str,
        *,
        user_id: str,
        channel_id: str,
        message: Message | None = None,
    ) -> Delivery:
        """POST a button click (interactivity payload), under ``message`` if given."""
        payload = self._slack.action_payload(
            action_id, value, user_id=user_id, channel_id=channel_id, message=message
        )
        body = urlencode({"payload": json.dumps(payload)}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return await self.post(body, headers)

    async def post(
        self, body: bytes, headers: dict[str, str], *, signature: Signature = "valid"
    ) -> Delivery:
        """Sign and send; Slack gives up after 3 s, this after patient(ACK_DEADLINE)."""
        timestamp = int(time.time())
        if signature == "stale":
            timestamp -= 10 * 60
        secret = self._secret if signature != "forged" else self._secret + "-wrong"
        if signature != "missing":
            headers = {
                **headers,
                "X-Slack-Request-Timestamp": str(timestamp),
                "X-Slack-Signature": sign(secret, body, timestamp),
            }
        started = time.monotonic()
        timeout = aiohttp.ClientTimeout(total=patient(ACK_DEADLINE))
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self._url, data=body, headers=headers) as response,
        ):
            text = await response.text()
        return Delivery(response.status, text, time.monotonic() - started)


async def wait_until(
    predicate: Callable[[], bool], *, timeout: float | None = None, interval: float = 0.02
) -> None:
    """Poll until `predicate()` is true (what users see settles asynchronously); the default
    deadline is patient(10) s."""
    deadline = time.monotonic() + (patient(10.0) if timeout is None else timeout)
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(interval)
