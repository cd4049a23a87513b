"""Where a growing Markdown text may be cut so that its first part renders the same, whatever
is written after it: renderers keep that part's output and render only the rest on each edit.
"""

from __future__ import annotations

import re

# A line that may open or close a fenced code block: its fence and the rest of the line.
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)", re.MULTILINE)
# Constructs whose meaning crosses paragraphs: link reference definitions and footnotes (a
# definition anywhere changes text before it), HTML comments, display maths.
_LONG_RANGE = re.compile(r"^ {0,3}\[[^\]]*\]:|\[\^|<!--|\$\$|\\\[", re.MULTILINE)
# What may not start the text after a break: anything that could continue a block before it
# (indentation, a list item, a quote, a table row).
_CONTINUES = re.compile(r"[\s>|]|[*+-](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)")
_BREAKS_TRIED = 8


def settled_break(source: str) -> int:
    """Where the last blank line that ends a paragraph for good starts, or -1 if none does.

    Settled: outside code fences, followed by text that cannot continue the block before it,
    and in a text with no construct whose meaning crosses paragraphs.
    """
    if _LONG_RANGE.search(source):
        return -1
    code = _code_spans(source)
    cut = len(source)
    for _ in range(_BREAKS_TRIED):
        cut = source.rfind("\n\n", 0, cut)
        if cut <= 0:
            return -1
        after = source[cut + 2 : cut + 12]
        if not after or _CONTINUES.match(after):
            continue
        if any(start < cut < end for start, end in code):
            continue  # a blank line in a code block
        return cut
    return -1


def _code_spans(source: str) -> list[tuple[int, int]]:
    """Where fenced code blocks are, as CommonMark reads fences: a closing fence is the same
    character, at least as long, with nothing after it; an open one runs to the end."""
    spans: list[tuple[int, int]] = []
    opened: tuple[int, str] | None = None  # where the open block starts, and its fence
    for line in _FENCE.finditer(source):
        fence, rest = line.group(1), line.group(2)
        if opened is None:
            if not (fence[0] == "`" and "`" in rest):  # backticks may not follow a ``` opener
                opened = (line.start(), fence)
        elif fence[0] == opened[1][0] and len(fence) >= len(opened[1]) and not rest.strip():
            spans.append((opened[0], line.end()))
            opened = None
    if opened is not None:
        spans.append((opened[0], len(source)))
    return spans
