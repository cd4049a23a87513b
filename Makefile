# Parley's everyday commands. `make chat` runs the whole local stack; `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: chat test check lint types pytest venv redis vllm serve stop doctor bench profile fuzz catalogs clean

chat: venv redis ## the whole local stack: Redis, a local vLLM and the terminal chat
	tools/chat.sh

test: venv redis vllm lint types pytest ## everything CI checks

check: lint types ## static checks only

venv: $(BIN)/parley ## the bot's virtual environment with dev tools

$(BIN)/parley: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -c "import core, bots, telegram, slack_bolt, openai, redis"
	touch $@

redis: ## redis-server for tests and the embedded store (Debian/Ubuntu)
	@command -v redis-server >/dev/null || tools/apt_install.sh redis-server

vllm: ## vLLM in its own cached environment (~/.cache/parley/vllm-venv)
	tools/install_vllm.sh

serve: venv ## serve the model (or the tiny test model when offline) on :8000
	$(BIN)/parley model serve

stop: venv ## stop a vLLM started by `make chat`
	$(BIN)/parley model stop

doctor: venv ## check Redis and the model server
	$(BIN)/parley doctor

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types:
	$(BIN)/mypy

pytest:
	$(BIN)/python -m pytest

bench: venv redis ## benchmarks: prints a table, writes bench-results/latest.json
	$(BIN)/python -m tools.bench

profile: venv redis ## where the bot's CPU goes under figure 3's load (cProfile, by package)
	$(BIN)/python -m tools.bench.profile

fuzz: venv redis ## property tests with 10,000 cases each (minutes per test: no 120 s cap)
	HYPOTHESIS_PROFILE=long $(BIN)/python -m pytest -m "not vllm" -p no:randomly --timeout=3600 \
		tests/unit tests/fuzz

catalogs: venv ## re-extract the texts and update + compile the translations (core/locale)
	$(BIN)/python -m tools.catalogs

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis

soak: venv redis ## memory under churn: 200 chats for 30 minutes (not in CI); SOAK_MINUTES=…
	$(BIN)/python -m tools.bench.soak --minutes $(or $(SOAK_MINUTES),30) --chats 200
