"""Chaos suite: Parley under model crashes, Redis restarts, 429 storms and duplicates."""
