"""The garbage collector as `parley telegram|slack` sets it, for tests that load one process."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from bots.gc_tuning import tune_for_serving


@contextlib.contextmanager
def gc_as_served() -> Iterator[None]:
    """``tune_for_serving`` for the block, CPython's settings again after it.

    A test process holds every module and fixture of the suite: with the default thresholds a
    full collection walks all of it every few seconds, and the stall (100–300 ms with the event
    loop standing still) bunches the writes it held up into one burst that no bot would send
    once tuned as it runs in production (bots/gc_tuning.py).
    """
    thresholds = gc.get_threshold()
    tune_for_serving()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
