"""Local model serving: `parley model serve` and `parley model stop` (vLLM, OpenAI API).

The implementation is in `bots.model.serve`; it is imported on call so that
`python -m bots.model.serve` runs cleanly.
"""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """`parley model serve ARGS`."""
    from bots.model import serve

    return serve.main(argv)


def stop_main(argv: list[str]) -> int:
    """`parley model stop ARGS`."""
    from bots.model import serve

    return serve.stop_main(argv)


__all__ = ["main", "stop_main"]
