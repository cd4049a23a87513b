"""A fake Slack Web API in its own process for benchmarks: tests.fakes.fake_slack, limits lifted.

Prints ``listening on URL`` (the Web API base URL) and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from tests.fakes.fake_slack import FakeSlack

UNLIMITED = 10**9


async def serve() -> None:
    """Listen until SIGTERM/SIGINT; announce the URL on stdout."""
    fake = FakeSlack(update_limit=UNLIMITED, update_window=1.0, post_limit=UNLIMITED)
    url = await fake.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {url}", flush=True)
    try:
        await stop.wait()
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
