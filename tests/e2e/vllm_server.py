"""A real vLLM for the end-to-end tests: installed if needed, serving the scripted test model.

`start_vllm_server()` installs vLLM (``tools/install_vllm.sh``, cached in
``~/.cache/parley/vllm-venv``), builds the scripted tiny model (``tools/build_test_model.py``,
cached in ``var/models``), starts
``vllm.entrypoints.openai.api_server`` on a free loopback port with the same flags as
``parley model serve`` on CPU, and waits for ``/health``. `RealVllm.stop()` ends its whole
process group. The session fixture ``real_vllm`` (registered in ``tests/e2e/conftest.py``)
yields the OpenAI base URL ``http://127.0.0.1:PORT/v1``; ``real_vllm_server`` yields the
`RealVllm` itself (root URL, log, max_model_len).

Environment:

* ``PARLEY_E2E_VLLM_URL`` — use an already running server (its ``/v1`` URL) instead.
* ``PARLEY_E2E_MAX_MODEL_LEN`` — the context length to serve (default 2048).
* ``PARLEY_SKIP_VLLM=1`` — skip these tests (ignored when ``CI`` is set: in CI a vLLM that
  cannot be installed or started fails the run loudly instead of skipping).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bots.model import serve

DEFAULT_E2E_MAX_MODEL_LEN = 2048
START_TIMEOUT_S = 240.0


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false", "no"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class RealVllm:
    """A vLLM server started for tests (or an external one when `proc` is None)."""

    root_url: str  # http://127.0.0.1:PORT
    max_model_len: int
    model_dir: Path | None = None
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (what Parley's LLM_BASE_URL takes)."""
        return self.root_url + "/v1"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def healthy(self) -> bool:
        return serve.health_ok(self.root_url)

    def log_tail(self, lines: int = 60) -> str:
        return serve.log_tail(self.log_path, lines)

    def stop(self) -> None:
        """Stop the whole process group (idempotent)."""
        if self.proc is not None:
            t0 = time.monotonic()
            serve.terminate_group(self.proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            self.timings["stop_s"] = time.monotonic() - t0
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def prepare(venv: str | None = None) -> tuple[Path, Path]:
    """Install vLLM if needed and build the scripted model if needed: (vllm python, model dir)."""
    python = serve.find_vllm_python(venv)
    if python is None:
        python = serve.install_vllm(venv)
    model_dir = serve.ensure_test_model(python, "scripted")
    return python, model_dir


def start_vllm_server(
    max_model_len: int | None = None,
    log_dir: Path | None = None,
    timeout: float = START_TIMEOUT_S,
    extra_args: list[str] | None = None,
) -> RealVllm:
    """Start a real vLLM serving the scripted test model on a free port; wait until healthy.

    Raises `serve.ServeError` (with the log's last lines) when it cannot start.
    """
    external = os.environ.get("PARLEY_E2E_VLLM_URL")
    if external:
        root = external.rstrip("/").removesuffix("/v1")
        return RealVllm(root_url=root, max_model_len=max_model_len or _env_max_len())
    t0 = time.monotonic()
    python, model_dir = prepare()
    prepared = time.monotonic() - t0
    max_len = max_model_len or _env_max_len()
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="parley-e2e-vllm-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    last_error: serve.ServeError | None = None
    for _attempt in range(2):  # a second try covers a port taken between probe and bind
        port = free_port()
        spec = serve.ServerSpec(
            python=python,
            model=str(model_dir),
            host="127.0.0.1",
            port=port,
            max_model_len=max_len,
            # Eager mode and one process everywhere (also with a CUDA vllm): the fastest start
            # for the tiny model, and the flags CI runs with.
            gpu=False,
            offline=True,
            extra_args=list(extra_args or []),
        )
        log_path = log_dir / f"vllm-{port}.log"
        log = log_path.open("wb")
        server = RealVllm(
            root_url=spec.base_url,
            max_model_len=max_len,
            model_dir=model_dir,
            log_path=log_path,
            _log=log,
        )
        t1 = time.monotonic()
        try:
            server.proc = serve.start_vllm(spec, log)
            took = serve.wait_healthy(server.proc, spec.base_url, timeout, log_path, False)
        except BaseException as exc:
            server.stop()
            if isinstance(exc, serve.ServeError) and "address already in use" in str(exc).lower():
                last_error = exc
                continue
            raise
        server.timings.update({"prepare_s": prepared, "start_s": took or time.monotonic() - t1})
        return server
    assert last_error is not None
    raise last_error


def _env_max_len() -> int:
    raw = os.environ.get("PARLEY_E2E_MAX_MODEL_LEN", "")
    return int(raw) if raw.isdigit() else DEFAULT_E2E_MAX_MODEL_LEN
