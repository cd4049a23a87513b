"""Example counts that follow the hypothesis profile chosen by HYPOTHESIS_PROFILE.

tests/conftest.py registers "ci" (the quick default) and "long" (10,000 examples, `make fuzz`).
A bare ``@settings(max_examples=N)`` overrides whichever profile is loaded, so property tests
take their settings from here instead:

* ``profile_settings(quick=N)``: a test's own budget under the quick profile (N: what it can
  afford in CI, above or below the profile's count); under a larger profile, the profile's count
  (or N if that is more). Without ``quick``, simply the profile.
* ``scaled_settings(fraction)``: a fixed share of the profile, for targets that cost a network
  round trip per example (e.g. 0.1: 15 in CI, 1,000 in the long run).

Settings are built when the decorator runs, i.e. when the test module is imported; the profile is
loaded before that (tests/conftest.py, or hypothesis' own ``--hypothesis-profile``).
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis.errors import InvalidArgument

QUICK_PROFILE = "ci"


def active_examples() -> int:
    """max_examples of the loaded profile."""
    return int(settings().max_examples)  # a bare settings() inherits the loaded profile


def quick_examples() -> int:
    """max_examples of the quick profile (the loaded one if "ci" was never registered)."""
    try:
        return int(settings.get_profile(QUICK_PROFILE).max_examples)
    except InvalidArgument:
        return active_examples()


def examples(quick: int | None = None) -> int:
    """How many examples a test with CI budget ``quick`` runs under the loaded profile.

    At or below the quick profile the budget scales with it (exactly ``quick`` in CI); above it,
    the profile governs: the long run gives every test at least its 10,000.
    """
    active, base = active_examples(), quick_examples()
    if quick is None:
        return active
    if active > base:
        return max(active, quick)
    return max(1, round(quick * active / base))


def profile_settings(quick: int | None = None, **overrides: Any) -> settings:
    """``settings(...)`` whose max_examples follows the profile (see ``examples``)."""
    return settings(max_examples=examples(quick), **overrides)


def scaled_settings(fraction: float, *, floor: int = 1, **overrides: Any) -> settings:
    """``settings(...)`` with ``fraction`` of the loaded profile's examples (at least ``floor``)."""
    return settings(max_examples=max(floor, round(active_examples() * fraction)), **overrides)
