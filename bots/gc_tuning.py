"""Garbage-collector settings for a long-running bot serving many streams at once."""

from __future__ import annotations

import gc

# CPython's defaults (700, 10, 10) run a full collection every ~70,000 net allocations; with
# a hundred replies streaming, that is every few seconds, and each one walks every live object
# (the SDKs' modules included) while the event loop stands still: 100-200 ms stalls showed as
# the edit-lag p99 at 100 streams (docs/PERFORMANCE.md, figure 2). Nearly all garbage here is
# freed by reference counting; the collector only has cycles to find.
THRESHOLDS = (100_000, 50, 100)


def tune_for_serving() -> None:
    """Leave start-up objects out of every future collection and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
