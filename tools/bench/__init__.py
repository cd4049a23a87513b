"""`make bench`: Parley's benchmarks (see docs/PERFORMANCE.md); run with `python -m tools.bench`."""
