"""`parley`: the composition root — settings, Redis, the model client and one adapter."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from bots import admin_cli, event_loop
from bots.gc_tuning import tune_for_serving
from bots.logs import install_last_resort, one_line, report_unexpected, setup_logging
from bots.ops import ops_listener
from bots.runtime import Runtime, open_runtime
from core.errors import BotError, ConfigError
from core.phrases import Phrases
from core.settings import CoreSettings, load_settings

log = logging.getLogger("parley")


def _parser() -> argparse.ArgumentParser:
    """All subcommands."""
    parser = argparse.ArgumentParser(prog="parley", description="A reasoning LLM in your chats.")
    sub = parser.add_subparsers(dest="command", required=True)
    chat = sub.add_parser("chat", help="talk to the bot in this terminal")
    chat.add_argument("--user", default=None, help="whose conversation (default: your login)")
    mode = chat.add_mutually_exclusive_group()
    mode.add_argument("--plain", action="store_true", help="one answer per input line")
    mode.add_argument("--live", action="store_true", help="stream live even if not a TTY")
    sub.add_parser("telegram", help="run the Telegram bot")
    sub.add_parser("slack", help="run the Slack bot")
    sub.add_parser("doctor", help="check Redis and the model server, say how to fix problems")
    admin_cli.add_parser(sub)
    model = sub.add_parser("model", help="serve the model locally with vLLM")
    model.add_argument("action", choices=["serve", "stop"])
    model.add_argument("args", nargs=argparse.REMAINDER, help="options for the action")
    return parser


def _secrets(settings: CoreSettings) -> list[str]:
    """Values that must never reach a log line."""
    values = [settings.llm_api_key.get_secret_value()]
    for secret in (settings.redis_url, settings.redis_password, settings.redis_sentinel_password):
        if secret is not None:
            values.append(secret.get_secret_value())
    return [v for v in values if v and v != "EMPTY"]


async def _with_runtime(
    settings: CoreSettings,
    body: Callable[[Runtime], Coroutine[Any, Any, int]],
    phrases: Phrases | None = None,
    *,
    allow_memory: bool,
) -> int:
    """Run ``body`` with a runtime built from settings (in-process memory only if allowed)."""
    async with open_runtime(settings, phrases=phrases, allow_memory=allow_memory) as runtime:
        return await body(runtime)


def _run_chat(args: argparse.Namespace, settings: CoreSettings) -> int:
    """`parley chat`."""
    from bots.terminal.app import run

    user = args.user or getpass.getuser()
    interactive = False if args.plain else (True if args.live else None)
    # One person's throwaway session may live in process memory (open_redis warns about it).
    return asyncio.run(
        _with_runtime(
            settings, lambda rt: run(rt, user=user, interactive=interactive), allow_memory=True
        )
    )


_ADAPTERS = {"telegram": "bots.telegram.app", "slack": "bots.slack.app"}


def _run_platform(name: str, settings: CoreSettings) -> int:
    """`parley telegram` / `parley slack`: each adapter module brings its settings and phrases."""
    module = importlib.import_module(_ADAPTERS[name])
    adapter_settings = load_settings(module.SETTINGS)
    setup_logging([*_secrets(settings), *module.secret_values(adapter_settings)])

    async def body(runtime: Runtime) -> int:
        tune_for_serving()  # everything is imported and wired by now
        async with ops_listener(runtime, settings.metrics_listen):
            await module.run(runtime, adapter_settings)
        return 0

    # A bot on process memory would lose every history at a restart and split it between
    # replicas: without Redis it refuses to start (one line, exit 2).
    return event_loop.run(_with_runtime(settings, body, module.PHRASES, allow_memory=False))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, build settings, run one command; errors become one clear line."""
    install_last_resort()  # also for what escapes after main returns, or in another thread
    args = _parser().parse_args(argv)
    try:
        if args.command == "model":
            from bots.model import serve

            action = serve.main if args.action == "serve" else serve.stop_main
            return action(list(args.args))
        settings = load_settings(CoreSettings)
        # Interactive commands keep the terminal for their own output; services log at INFO.
        quiet = args.command in ("chat", "admin", "doctor")
        setup_logging(_secrets(settings), default_level="WARNING" if quiet else "INFO")
        if args.command == "chat":
            return _run_chat(args, settings)
        if args.command == "admin":
            return asyncio.run(admin_cli.run(settings, args))
        if args.command == "doctor":
            from bots.doctor import run as run_doctor

            return asyncio.run(run_doctor(settings))
        return _run_platform(args.command, settings)
    except ConfigError as exc:
        print(f"parley: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BotError as exc:
        print(f"parley: {one_line(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last resort: one redacted line; LOG_LEVEL=DEBUG logs the rest
        report_unexpected(exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
