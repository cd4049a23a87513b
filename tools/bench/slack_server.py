"""A fake Slack Web API in its own process for benchmarks: tests.fakes.fake_slack, limits lifted.

FakeSlack unchanged in its rules (token checks, message lookups, length limits), with its Tier 3
and per-channel windows lifted so the bot's own pacing is what spaces the writes (its 429s would
still be counted). Like the fake Bot API (platform_server) it adds what benchmarks need: every
answer is delayed by ``rtt`` seconds (the call is stamped on arrival first), and each write
(chat.postMessage, chat.update) records its arrival and, when the bot sent one, the pacer slot
it was allowed at (``bench_slot`` in the query string).

Prints ``listening on URL`` (the Web API base URL) and serves until SIGTERM. Controls sit
beside the Web API methods: ``POST {URL}bench.config`` (``rtt``; also forgets every message,
call and write so far), ``GET {URL}bench.stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.fake_slack import FakeSlack
from tools.bench.procs import serve_until_signalled

UNLIMITED = 10**9
WRITES = ("chat.postMessage", "chat.update")


@dataclass
class WriteLog:
    """What the benchmarks read back; monotonic seconds, comparable across processes."""

    writes: int = 0  # chat.postMessage and chat.update that succeeded
    updates: int = 0  # of those, chat.update
    posts: int = 0  # of those, chat.postMessage
    flood_429: int = 0  # writes answered 429 ratelimited
    errors: int = 0  # other failed writes
    lags: list[float] = field(default_factory=list)  # arrival − pacer slot, per write
    lag_at: list[float] = field(default_factory=list)  # the slot of each lag sample


class BenchSlack(FakeSlack):
    """FakeSlack with lifted limits, a round-trip delay and a log of when writes arrived."""

    def __init__(self) -> None:
        super().__init__(update_limit=UNLIMITED, update_window=1.0, post_limit=UNLIMITED)
        self.rtt = 0.0
        self.log = WriteLog()

    async def _handle_api(self, request: web.Request) -> web.Response:
        """Bench controls first; Web API calls stamped on arrival, answered after the RTT."""
        method = request.match_info["method"]
        if method.startswith("bench."):
            return await self._control(method, request)
        response = await super()._handle_api(request)
        # FakeSlack appends the call and returns without awaiting again: the last one is ours.
        call = self.calls[-1]
        if method in WRITES:
            log = self.log
            if call.ok:
                log.writes += 1
                if method == "chat.update":
                    log.updates += 1
                else:
                    log.posts += 1
                slot = call.args.get("bench_slot")
                if slot:
                    log.lags.append(call.at - float(slot))
                    log.lag_at.append(float(slot))
            elif call.status == 429:
                log.flood_429 += 1
            else:
                log.errors += 1
        if self.rtt > 0:
            await asyncio.sleep(self.rtt)
        return response

    async def _control(self, method: str, request: web.Request) -> web.Response:
        """bench.config and bench.stats."""
        if method == "bench.config":
            body: dict[str, Any] = await request.json() if request.can_read_body else {}
            self.rtt = float(body.get("rtt", self.rtt))
            self.messages.clear()
            self.calls.clear()
            self.statuses.clear()
            self._post_windows.clear()
            self.log = WriteLog()
            return web.json_response({})
        if method == "bench.stats":
            stats = asdict(self.log)
            stats["cpu_seconds"] = time.process_time()
            stats["calls"] = dict(Counter(c.method for c in self.calls))
            stats["refusals"] = dict(Counter(c.error for c in self.calls if not c.ok))
            return web.json_response(stats)
        return web.json_response({"ok": False, "error": "unknown_method"}, status=404)


async def serve() -> None:
    """Listen until SIGTERM/SIGINT; announce the URL on stdout."""
    fake = BenchSlack()
    url = await fake.start()
    try:
        await serve_until_signalled(url)
    finally:
        await fake.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line (``--port`` is accepted and ignored: the fake picks one)."""
    parser = argparse.ArgumentParser(description="fake Slack Web API for benchmarks")
    parser.add_argument("--port", type=int, default=0)
    parser.parse_args(argv)
    asyncio.run(serve())


if __name__ == "__main__":
    main()
