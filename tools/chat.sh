#!/usr/bin/env bash
# `make chat`: Redis (embedded), a local vLLM unless one already answers, then the terminal chat.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -f .env ]]; then set -a; . ./.env; set +a; fi
BASE_URL="${LLM_BASE_URL:-http://localhost:8000/v1}"
if ! curl -fsS --max-time 3 "$BASE_URL/models" >/dev/null 2>&1; then
    case "$BASE_URL" in
        http://localhost:8000/*|http://127.0.0.1:8000/*)
            echo "Starting a local vLLM (first time: ~2 min to install, ~30 s to start)..."
            .venv/bin/parley model serve --detach
            echo "vLLM keeps running for the next chat; \`make stop\` stops it." ;;
        *)
            echo "The model server at LLM_BASE_URL=$BASE_URL does not answer." >&2
            exit 1 ;;
    esac
fi
exec .venv/bin/parley chat "$@"
