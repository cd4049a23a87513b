"""The serving GC settings: start-up objects frozen, collections rarer."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bots.gc_tuning import THRESHOLDS, tune_for_serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put the interpreter's collector back as it was for the other tests."""
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_serving_freezes_start_up_objects_and_collects_less_often() -> None:
    tune_for_serving()
    assert gc.get_freeze_count() > 1_000  # the imported modules' objects, at least
    assert gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > 700  # rarer than CPython's default
