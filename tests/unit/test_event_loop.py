"""`parley telegram|slack` serve on uvloop when it is installed, on asyncio otherwise."""

from __future__ import annotations

import asyncio
import importlib
import sys
from types import ModuleType

import pytest

from bots import event_loop


def test_without_uvloop_it_falls_back_to_asyncio_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def missing(name: str, package: str | None = None) -> ModuleType:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", missing)
    assert event_loop.runner() is asyncio.run


def test_off_linux_it_is_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert event_loop.runner() is asyncio.run


def test_uvloop_runs_the_bot_where_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    if not sys.platform.startswith("linux"):
        pytest.skip("uvloop is used on Linux only")
    assert event_loop.runner() is uvloop.run

    async def loop_name() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(loop_name()).startswith("uvloop")
