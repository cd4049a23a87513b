"""`parley chat`: live streaming for people at a terminal, line-by-line answers for scripts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.markup import escape

from bots.runtime import Runtime
from bots.terminal.sink import LiveTerminalSink, TranscriptSink
from core.commands import Caller, CommandRequest, TurnRequest
from core.conversation import ConversationKey, IncomingMessage
from core.i18n import N_
from core.service import ChatService
from core.surfaces import TERMINAL

PLATFORM = "terminal"
_LEAVE = ("/exit", "/quit")
WELCOME = N_("**Parley** — type a message; /help for commands, Ctrl-D to leave.")


def terminal_language(environ: Mapping[str, str] = os.environ) -> str:
    """The terminal's language as POSIX says: LC_ALL, then LC_MESSAGES, then LANG."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if environ.get(name):
            return environ[name]
    return ""


def plain_markdown(text: str) -> str:
    """A command reply for a terminal: the Markdown markers of bold and code dropped."""
    return text.replace("**", "").replace("`", "")


def rich_markup(text: str) -> str:
    """Parley's own **bold** as rich's markup (the text is Parley's, never a person's)."""
    parts = escape(text).split("**")
    return "".join(f"[bold]{p}[/bold]" if i % 2 else p for i, p in enumerate(parts))


@dataclass
class TerminalChat:
    """One local user talking to the core; commands are parsed here and decided by the core."""

    service: ChatService
    user: str
    out: TextIO
    language: str = ""  # the terminal's locale, e.g. "zh_CN.UTF-8"

    @property
    def caller(self) -> Caller:
        """The person at this terminal."""
        return Caller(PLATFORM, self.user, "local", language=self.language)

    @property
    def key(self) -> ConversationKey:
        """The terminal user's single conversation."""
        return ConversationKey(PLATFORM, "local", self.user)

    def message(self, text: str) -> IncomingMessage:
        """A line typed by the user, as the core takes it."""
        return IncomingMessage(
            self.key, text, user_id=self.user, display_name=self.user, language=self.language
        )

    async def command(self, line: str) -> bool | TurnRequest:
        """Run a slash command: False means leave, a TurnRequest is a turn to stream."""
        word, _, rest = line.strip().partition(" ")
        if word.lower() in _LEAVE:
            return False
        name = TERMINAL.parse(word)
        if name is None:
            self._say((await self.service.commands.unknown(self.caller, word)).text)
            return True
        request = CommandRequest(
            name, self.caller, key=self.key, args=tuple(rest.split()), text=rest.strip()
        )
        reply = await self.service.command(request)
        if reply.turn is not None:
            return reply.turn
        if reply.text:
            self._say(reply.text)
        return True

    def _say(self, text: str) -> None:
        """Lines from Parley itself."""
        self.out.write(plain_markdown(text) + "\n")
        self.out.flush()


async def run_script(chat: TerminalChat, lines: TextIO) -> int:
    """Non-interactive: one message per input line, each final answer printed in order."""
    settings = chat.service.settings
    while True:
        line = await asyncio.to_thread(lines.readline)
        if not line:
            return 0
        text = line.strip()
        if not text:
            continue
        sink = TranscriptSink(settings.show_reasoning)
        if text.startswith("/"):
            outcome = await chat.command(text)
            if outcome is False:
                return 0
            if outcome is True:
                continue
            await chat.service.submit(outcome, sink)
        else:
            await chat.service.handle(chat.message(text), sink)
        sink.flush(chat.out)


def _start_reader(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Read stdin on a thread so /stop can be typed while an answer streams."""

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()


async def run_interactive(chat: TerminalChat, console: Console) -> int:
    """Interactive: streamed answers, Ctrl-C stops the answer (or leaves when idle)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    _start_reader(loop, queue)
    running: asyncio.Task[object] | None = None
    leave = asyncio.Event()
    background: set[asyncio.Task[bool | TurnRequest]] = set()

    def on_interrupt() -> None:
        if running is not None and not running.done():
            task = loop.create_task(chat.command("/stop"))
            background.add(task)
            task.add_done_callback(background.discard)
        else:
            leave.set()

    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    t = await chat.service.commands.languages.translator(chat.caller)
    console.print(rich_markup(t.gettext(WELCOME)))
    try:
        while not leave.is_set():
            if running is None or running.done():
                console.print("[bold cyan]you ›[/bold cyan] ", end="")
            getter = asyncio.ensure_future(queue.get())
            waiter = asyncio.ensure_future(leave.wait())
            await asyncio.wait({getter, waiter}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            if not getter.done():
                getter.cancel()
                break
            line = getter.result()
            if line is None:
                break
            text = line.strip()
            if not text:
                continue
            sink = LiveTerminalSink(console)
            if text.startswith("/"):
                outcome = await chat.command(text)
                if outcome is False:
                    break
                if outcome is True:
                    continue
                running = asyncio.create_task(_answer_turn(chat, outcome, sink))
            else:
                running = asyncio.create_task(_answer(chat, text, sink))
            await _wait_streaming(running, queue, chat)
    finally:
        with contextlib.suppress(NotImplementedError):
            loop.remove_signal_handler(signal.SIGINT)
        if running is not None and not running.done():
            await chat.command("/stop")
            await running
    console.print()
    return 0


async def _answer(chat: TerminalChat, text: str, sink: LiveTerminalSink) -> object:
    """One streamed answer; the live region is frozen at the end."""
    try:
        return await chat.service.handle(chat.message(text), sink)
    finally:
        sink.close()


async def _answer_turn(chat: TerminalChat, turn: TurnRequest, sink: LiveTerminalSink) -> object:
    """A turn a command started (the last message answered again)."""
    try:
        return await chat.service.submit(turn, sink)
    finally:
        sink.close()


async def _wait_streaming(
    running: asyncio.Task[object], queue: asyncio.Queue[str | None], chat: TerminalChat
) -> None:
    """While an answer streams, only /stop is acted on; other lines wait their turn."""
    held: list[str | None] = []
    while not running.done():
        getter = asyncio.ensure_future(queue.get())
        await asyncio.wait({getter, running}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            break
        line = getter.result()
        if line is not None and line.strip().lower() == "/stop":
            await chat.command("/stop")
        else:
            held.append(line)
    for line in held:
        queue.put_nowait(line)


async def run(runtime: Runtime, *, user: str, interactive: bool | None = None) -> int:
    """Entry point of `parley chat`."""
    interactive = sys.stdin.isatty() if interactive is None else interactive
    chat = TerminalChat(runtime.service, user, sys.stdout, terminal_language())
    if interactive:
        return await run_interactive(chat, Console())
    return await run_script(chat, sys.stdin)
