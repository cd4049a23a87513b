"""`parley chat` as a subprocess: the scripted use from the README, and a model server dying."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from core.conversation import ConversationKey
from core.store.keys import KeySpace
from tests.fakes.fake_vllm import FakeVLLM
from tests.fakes.fixtures import FakeVLLMFactory
from tests.services import RedisServer
from tests.support.timing import eventually, patient

ADA = ConversationKey("terminal", "local", "ada")


def chat_env(fake: FakeVLLM, redis_server: RedisServer, tmp_path: Path) -> dict[str, str]:
    """Environment for a `parley chat` run against the fakes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "REDIS_"))}
    env.update(
        LLM_BASE_URL=fake.base_url,
        REDIS_URL=redis_server.url,
        DATA_DIR=str(tmp_path),
        LLM_RETRIES="0",
        LOG_LEVEL="WARNING",
    )
    return env


async def run_chat(env: dict[str, str], stdin: bytes) -> tuple[str, str, int]:
    """Run the scripted chat to completion."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "chat", "--user", "ada",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 60)
    return out.decode(), err.decode(), process.returncode or 0


async def stored(redis_client: aioredis.Redis) -> list[dict[str, object]]:
    """Ada's history as stored."""
    raws = await redis_client.lrange(KeySpace().history(ADA), 0, -1)
    return [orjson.loads(raw) for raw in raws]


async def test_scripted_chat_answers_every_line_and_remembers(
    fake_vllm: FakeVLLM, redis_server: RedisServer, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    env = chat_env(fake_vllm, redis_server, tmp_path)
    out, err, code = await run_chat(env, b"My name is Ada.\nWhat is my name?\n")
    assert code == 0, err
    assert out.splitlines() == ["You said: My name is Ada.", "You said: What is my name?"]
    assert "Traceback" not in err
    second = fake_vllm.requests[1]
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
    assert second["messages"][0]["content"] == "My name is Ada."
    assert second["messages"][1]["content"] == "You said: My name is Ada."
    assert second["temperature"] == 0.6
    assert all(m["role"] != "system" for r in fake_vllm.requests for m in r["messages"])
    history = await stored(redis_client)
    assert [h["c"] for h in history] == [
        "My name is Ada.", "You said: My name is Ada.",
        "What is my name?", "You said: What is my name?",
    ]  # fmt: skip
    assert not any("The user wrote" in str(h["c"]) for h in history)


async def test_reasoning_printed_only_in_full_mode(
    fake_vllm: FakeVLLM, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = chat_env(fake_vllm, redis_server, tmp_path)
    out, _, _ = await run_chat(env, b"hi\n")
    assert "The user wrote" not in out
    env["SHOW_REASONING"] = "full"
    out, _, _ = await run_chat(env, b"/reset\nhi\n")
    assert "The user wrote: hi." in out
    assert out.rstrip().endswith("You said: hi")


async def test_model_server_killed_mid_answer_then_back(
    fake_vllm_factory: FakeVLLMFactory,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    tmp_path: Path,
) -> None:
    fake = await fake_vllm_factory(token_interval=0.05)
    env = chat_env(fake, redis_server, tmp_path)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "chat", "--user", "ada",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(b"Tell me a long story please.\n")
    await process.stdin.drain()
    await eventually(lambda: bool(fake.requests), what="the chat to ask the model")
    await asyncio.sleep(0.4)  # some tokens are out (or not: the answer is cut either way)
    await fake.stop()
    first = (await asyncio.wait_for(process.stdout.readline(), patient(20))).decode()
    assert "model server is unavailable" in first
    await fake.restart()
    process.stdin.write(b"Are you back?\n")
    await process.stdin.drain()
    process.stdin.close()
    rest, err = await asyncio.wait_for(process.communicate(), 30)
    assert "You said: Are you back?" in rest.decode()
    assert process.returncode == 0
    assert b"Traceback" not in err
    history = await stored(redis_client)
    assert [h["c"] for h in history] == ["Are you back?", "You said: Are you back?"]


async def test_terminal_persona_and_instructions(
    fake_vllm: FakeVLLM, redis_server: RedisServer, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    env = chat_env(fake_vllm, redis_server, tmp_path)
    env["PERSONAS_FILE"] = str(Path(__file__).parent.parent / "support" / "personas.yaml")
    script = b"/persona\n/persona concise\n/instructions Say hi first.\nhello\n"
    out, err, code = await run_chat(env, script)
    assert code == 0, err
    assert "Persona here: Assistant" in out
    assert "• Concise (concise) — Short answers." in out  # plain text: no Markdown markers
    assert "Switch with /persona <id>." in out
    assert "Persona here: Concise. Short answers." in out
    (request,) = fake_vllm.requests
    assert request["messages"] == [
        {"role": "user", "content": "Answer in one sentence.\n\nSay hi first.\n\nhello"}
    ]
    assert request["temperature"] == 0.5
    history = await stored(redis_client)
    assert history[0]["c"] == "hello"  # the instructions are never stored
