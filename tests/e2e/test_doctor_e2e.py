"""`parley doctor` against the real vLLM and Redis: the served model, its context, the split."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.e2e.vllm_server import RealVllm
from tests.services import RedisServer
from tools.test_model_script import SERVED_MODEL_NAME

pytestmark = pytest.mark.vllm


async def test_doctor_reports_model_context_and_reasoning_split(
    real_vllm_server: RealVllm, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "REDIS_"))}
    env.update(
        LLM_BASE_URL=real_vllm_server.base_url,
        REDIS_URL=redis_server.url,
        DATA_DIR=str(tmp_path),
        LLM_MAX_TOKENS="512",  # within half the context: no warning about it
        LOG_LEVEL="WARNING",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bots", "doctor",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    out_bytes, err_bytes = await asyncio.wait_for(process.communicate(), 60)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert process.returncode == 0, out + err
    assert "Traceback" not in err
    lines = out.splitlines()
    assert f"✓ model server at {real_vllm_server.base_url} serves {SERVED_MODEL_NAME}" in lines
    assert f"✓ context length {real_vllm_server.max_model_len} tokens" in lines
    assert "✓ reasoning is split by the server (reasoning parser on)" in lines
    assert any(line.startswith("✓ token counting matches the server") for line in lines), out
    assert any(line.startswith("✓ Redis ") for line in lines), out
    assert not any(line.startswith(("✗", "!")) for line in lines), out
    assert lines[-1] == "all good"
