"""The fake Telegram Bot API in its own process, with a network round trip and write stamps.

It is tests.fakes.fake_telegram.FakeTelegram unchanged in its rules (flood control, entity
checks, "message is not modified"), plus what benchmarks need: every answer is delayed by
``rtt`` seconds (the request is stamped on arrival, the reply comes back later, like a real
Bot API across the internet), and each write records its arrival time and, when the bot sent
one, the pacer slot it was allowed at (``bench_slot`` in the query string).

Run standalone: ``python -m tools.bench.platform_server --port N`` (prints ``listening on URL``).
Controls: ``POST /bench/config`` (``rtt``, ``rules``: "telegram" or "per_chat", ``scale``),
``POST /bench/chats`` (``private`` and ``groups`` id lists; also forgets earlier chats and
calls), ``GET /bench/stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.fake_telegram import JSON, ApiCall, ApiError, Chat, FakeTelegram, RateRules
from tools.bench.procs import serve_until_signalled

STATUS_PREFIX = "💭"  # the reply stream's "Thinking…" line: not an answer yet
WRITES = ("sendmessage", "editmessagetext")
LIFTED = 1_000_000  # a bot-wide limit no run reaches


@dataclass
class WriteLog:
    """What the benchmarks read back; monotonic seconds, comparable across processes."""

    writes: int = 0
    flood_429: int = 0
    flood_by_rule: dict[str, int] = field(default_factory=dict)  # which limit answered 429
    errors: int = 0
    lags: list[float] = field(default_factory=list)  # arrival − pacer slot, per write
    lag_at: list[float] = field(default_factory=list)  # the slot of each lag sample
    first_answer: dict[str, float] = field(default_factory=dict)  # chat → first answer arrival
    last_write: dict[str, float] = field(default_factory=dict)  # chat → last write arrival


def rules_named(name: str, scale: float) -> RateRules:
    """Telegram's limits, or only the per-chat ones (paid broadcasts lift the bot-wide 30/s)."""
    if name == "telegram":
        return RateRules(time_scale=scale)
    if name == "per_chat":
        return RateRules(time_scale=scale, global_limit=LIFTED)
    raise ValueError(f"unknown rules {name!r}")


class BenchTelegram(FakeTelegram):
    """FakeTelegram with a round-trip delay and a log of when writes arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.rtt = 0.0
        self.log = WriteLog()
        self._rule = ""  # the window check that refused the write being handled

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """As FakeTelegram.start, with a backlog for a thousand connections opening at once."""
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=4096)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.url = f"http://{host}:{server.sockets[0].getsockname()[1]}"
        return self.url

    async def _handle(self, request: web.Request) -> web.Response:
        """Bench controls first; Bot API calls answered after the round trip."""
        if request.path.startswith("/bench/"):
            return await self._control(request)
        response = await super()._handle(request)
        if self.rtt > 0:
            await asyncio.sleep(self.rtt)
        return response

    async def _m_sendmessage(self, params: JSON, call: ApiCall) -> JSON:
        return await self._logged(super()._m_sendmessage, params, call)

    async def _m_editmessagetext(self, params: JSON, call: ApiCall) -> JSON:
        return await self._logged(super()._m_editmessagetext, params, call)

    async def _logged(self, method: Any, params: JSON, call: ApiCall) -> JSON:
        """Run a write and note its arrival, pacing lag and outcome."""
        log = self.log
        chat = str(params.get("chat_id"))
        self._rule = ""
        try:
            result: JSON = await method(params, call)
        except ApiError as exc:
            if exc.code == 429:
                log.flood_429 += 1
                rule = self._rule or "per chat"
                log.flood_by_rule[rule] = log.flood_by_rule.get(rule, 0) + 1
            elif "not modified" not in exc.description:
                log.errors += 1
            raise
        log.writes += 1
        slot = params.get("bench_slot")
        if slot:
            log.lags.append(call.at - float(slot))
            log.lag_at.append(float(slot))
        if chat not in log.first_answer and not str(params.get("text", "")).startswith(
            STATUS_PREFIX
        ):
            log.first_answer[chat] = call.at
        log.last_write[chat] = call.at
        return result

    def _check(self, writes: deque[float], now: float, limit: int, window: float) -> None:
        """FakeTelegram's sliding windows, noting which one refused; off when lifted."""
        if limit >= LIFTED:
            return  # no O(writes) scan per request for a limit that cannot be reached
        try:
            super()._check(writes, now, limit, window)
        except ApiError:
            self._rule = "group (20/min)" if limit == self.rules.group_limit else "bot (30/s)"
            raise

    async def _control(self, request: web.Request) -> web.Response:
        """/bench/config, /bench/chats, /bench/stats."""
        body: JSON = await request.json() if request.can_read_body else {}
        if request.path == "/bench/config":
            self.rtt = float(body.get("rtt", self.rtt))
            self.rules = rules_named(
                str(body.get("rules", "telegram")), float(body.get("scale", 1))
            )
        elif request.path == "/bench/chats":
            self.chats.clear()
            self.calls.clear()
            self._global_writes.clear()
            self.log = WriteLog()
            for chat_id in body.get("private", []):
                self.state(Chat(int(chat_id), "private", first_name=f"user{chat_id}"))
            for chat_id in body.get("groups", []):
                self.state(Chat(int(chat_id), "supergroup", title=f"group{chat_id}"))
        elif request.path == "/bench/stats":
            stats = asdict(self.log)
            stats["cpu_seconds"] = time.process_time()
            stats["calls"] = dict(Counter(c.method for c in self.calls))
            stats["refusals"] = dict(Counter(c.description for c in self.calls if not c.ok))
            return web.json_response(stats)
        else:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response({})


async def serve(port: int) -> None:
    """Listen until SIGTERM/SIGINT; announce the URL on stdout."""
    fake = BenchTelegram()
    url = await fake.start(port=port)
    try:
        await serve_until_signalled(url)
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(description="fake Telegram Bot API for benchmarks")
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args(argv).port))


if __name__ == "__main__":
    main()
