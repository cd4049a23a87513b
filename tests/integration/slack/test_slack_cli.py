"""`parley slack` as an operator runs it: a separate process, configured only by environment."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.fakes.fake_slack import FakeSlack, SlackSender, wait_until
from tests.fakes.fake_vllm import FakeVLLM, Reply
from tests.integration.slack.conftest import SIGNING_SECRET
from tests.services import free_port
from tests.support.timing import patient

REPO = Path(__file__).resolve().parents[3]


async def run_parley(env: dict[str, str], stderr: BinaryIO) -> asyncio.subprocess.Process:
    """Start `python -m bots slack` with only the given settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "LLM_", "REDIS"))}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bots",
        "slack",
        cwd=REPO,
        env={**clean, **env, "LOG_LEVEL": "DEBUG"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )


async def stop(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, as a service manager stops it; Parley must exit cleanly and quickly."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), timeout=patient(15))


@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_parley_slack_answers_and_never_logs_secrets(
    mode: str, fake_slack: FakeSlack, fake_vllm: FakeVLLM, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        "SLACK_BOT_TOKEN": fake_slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": fake_slack.api_url,
        "SLACK_HTTP_LISTEN": f"127.0.0.1:{port}",
        "LLM_BASE_URL": fake_vllm.base_url,
        "REDIS_URL": redis_url,
    }
    if mode == "socket":
        env["SLACK_APP_TOKEN"] = fake_slack.app_token
    fake_vllm.script(Reply(reasoning="thinking hard", answer="Hello from **Parley**."))
    log = tmp_path / "parley.log"
    with log.open("wb") as stderr:
        process = await run_parley(env, stderr)
    try:
        event = fake_slack.user_message("D0USER1", "U0ALICE", "hello?", channel_type="im")
        if mode == "socket":
            await asyncio.wait_for(fake_slack.socket_connected.wait(), timeout=30)
            await fake_slack.push_event(event)
        else:
            sender = SlackSender(
                fake_slack, f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET
            )
            await wait_until(lambda: _listening(port), timeout=30)
            assert (await sender.event(event)).status == 200
        await wait_until(
            lambda: (
                [m.visible for m in fake_slack.bot_replies("D0USER1", None)]
                == ["Hello from *Parley*."]
            ),
            timeout=30,
        )
    except AssertionError as failure:  # a wait timed out: the process's log says why
        failure.add_note(
            f"parley slack (exit code {process.returncode}):\n{log.read_text()[-5000:]}"
        )
        raise
    finally:
        code = await stop(process)
    output = log.read_text()
    assert code == 0, output
    for secret in (fake_slack.bot_token, fake_slack.app_token, SIGNING_SECRET):
        assert secret not in output


def _listening(port: int) -> bool:
    """Whether something accepts connections on the port."""
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
