"""The event loop `parley telegram|slack` serve on: uvloop where installed on Linux, else asyncio.

uvloop (the ``uvloop`` extra) runs the same code with less overhead per wake-up, which is most
of a streamed token's cost once the HTTP stacks are lean (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def runner() -> Callable[[Coroutine[Any, Any, T]], T]:
    """``uvloop.run`` when it can be used here, ``asyncio.run`` otherwise (silently)."""
    if sys.platform.startswith("linux"):
        try:
            uvloop = importlib.import_module("uvloop")
        except ImportError:
            pass
        else:
            run: Callable[[Coroutine[Any, Any, T]], T] = uvloop.run
            return run
    return asyncio.run


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the best event loop available."""
    return runner()(main)
