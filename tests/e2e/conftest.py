"""Fixtures for the end-to-end tests: a real vLLM serving the scripted test model.

``real_vllm`` (session scope) yields the OpenAI base URL ``http://127.0.0.1:PORT/v1`` of a vLLM
started for this test session; ``real_vllm_server`` yields the `RealVllm` object behind it. The
first test that uses them pays for installing vLLM (once per machine, ~1-2 min), building the
model (once, ~4 s) and starting the server (~25 s); the timeout of that test is raised for it.
Outside CI, ``PARLEY_SKIP_VLLM=1`` skips them; in CI (``CI`` set) a vLLM that cannot start
fails every test that needs it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from bots.model.serve import ServeError
from tests.e2e.vllm_server import RealVllm, in_ci, start_vllm_server

# Seconds allowed to the first test using the server: install + build + start, with margin.
SETUP_TIMEOUT_S = 900
_FIXTURES = {"real_vllm", "real_vllm_server"}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give the first test that starts vLLM the time that installing and starting takes."""
    for item in items:
        if _FIXTURES & set(getattr(item, "fixturenames", ())):
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(SETUP_TIMEOUT_S))
            break


@pytest.fixture(scope="session")
def real_vllm_server() -> Iterator[RealVllm]:
    if os.environ.get("PARLEY_SKIP_VLLM") == "1" and not in_ci():
        pytest.skip("PARLEY_SKIP_VLLM=1: real vLLM tests skipped")
    try:
        server = start_vllm_server()
    except (ServeError, OSError) as exc:
        message = f"could not start a real vLLM: {exc}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    print(
        f"\n[real vLLM] {server.base_url} model={server.model_dir} timings={server.timings}",
        file=sys.stderr,
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def real_vllm(real_vllm_server: RealVllm) -> str:
    """The OpenAI-compatible base URL of the session's real vLLM (ends with /v1)."""
    return real_vllm_server.base_url
