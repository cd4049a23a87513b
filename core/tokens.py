"""Counts tokens the way the served model does: Qwen BPE plus the R1 chat template's overhead."""

from __future__ import annotations

import base64
import functools
import importlib.util
import logging
import re
import unicodedata
from pathlib import Path
from typing import Protocol

import tiktoken

log = logging.getLogger(__name__)

# Qwen2's pre-tokenizer pattern (the same split rules as the Hugging Face tokenizer vLLM loads).
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# DeepSeek-R1-Distill-Qwen's added tokens at their real ids (tokenizer.json, added_tokens).
R1_SPECIAL_TOKENS: dict[str, int] = {
    "<｜end▁of▁sentence｜>": 151643,
    "<｜User｜>": 151644,
    "<｜Assistant｜>": 151645,
    "<｜begin▁of▁sentence｜>": 151646,
    "<|EOT|>": 151647,
    "<think>": 151648,
    "</think>": 151649,
    "<|quad_start|>": 151650,
    "<|quad_end|>": 151651,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
    "<tool_call>": 151657,
    "</tool_call>": 151658,
    "<|fim_prefix|>": 151659,
    "<|fim_middle|>": 151660,
    "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663,
    "<|file_sep|>": 151664,
}

# What the R1 template adds around content: BOS first; `<｜User｜>` before a user message;
# `<｜Assistant｜>` … `<｜end▁of▁sentence｜>` around an answer;
# `<｜Assistant｜><think>\n` at the end (the generation prompt).
PROMPT_OVERHEAD = 1 + 3
USER_OVERHEAD = 1
ASSISTANT_OVERHEAD = 2


class TokenCounter(Protocol):
    """Counts the tokens of one message's content."""

    def count(self, text: str) -> int:
        """Tokens in ``text`` as the model's tokenizer splits it."""
        ...


def prompt_tokens(user_counts: int, assistant_counts: int, users: int, assistants: int) -> int:
    """Prompt size from per-message content counts plus the chat template's fixed overhead."""
    return (
        PROMPT_OVERHEAD
        + user_counts
        + users * USER_OVERHEAD
        + assistant_counts
        + assistants * ASSISTANT_OVERHEAD
    )


def assistant_visible(content: str) -> str:
    """The part of an answer the R1 template keeps (it drops everything up to `</think>`)."""
    return content.rsplit("</think>", 1)[-1] if "</think>" in content else content


class QwenTokenCounter:
    """Exact counts with the real Qwen vocabulary (shipped in PyPI's dashscope package)."""

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self._encoding = encoding
        specials = sorted(encoding.special_tokens_set, key=len, reverse=True)
        self._specials = re.compile("|".join(map(re.escape, specials))) if specials else None

    def count(self, text: str) -> int:
        """Special-token text in content counts as the special token, as vLLM's tokenizer does."""
        if not text:
            return 0
        return len(self.encode(text))

    def encode(self, text: str) -> list[int]:
        """Token ids as the served tokenizer produces them (checked against vLLM's /tokenize).

        The Hugging Face tokenizer first cuts out the added (special) tokens from the raw text,
        then normalises each remaining piece to NFC, then applies BPE. tiktoken does not
        normalise, so decomposed text ("e" + U+0301, Hangul jamo, …) would count more tokens
        than the server sees. Cutting before normalising matters too: NFC would turn the ">" of
        "</think>" followed by U+0338 into "≯" and hide the special token.
        """
        if unicodedata.is_normalized("NFC", text):
            return self._encoding.encode(text, allowed_special="all", disallowed_special=())
        if self._specials is None:
            return self._plain(text)
        ids: list[int] = []
        start = 0
        for match in self._specials.finditer(text):
            ids.extend(self._plain(text[start : match.start()]))
            ids.append(self._encoding.encode_single_token(match.group()))
            start = match.end()
        ids.extend(self._plain(text[start:]))
        return ids

    def _plain(self, piece: str) -> list[int]:
        """BPE of text without special tokens, after the tokenizer's NFC normalisation."""
        if not piece:
            return []
        return self._encoding.encode_ordinary(unicodedata.normalize("NFC", piece))


class ApproximateTokenCounter:
    """A conservative estimate (≈3 UTF-8 bytes per token) when the vocabulary is unavailable."""

    def count(self, text: str) -> int:
        """Over-estimates for English, roughly right for CJK: safer than under-counting."""
        return (len(text.encode("utf-8")) + 2) // 3


def qwen_vocabulary_path() -> Path | None:
    """Where dashscope keeps `qwen.tiktoken`, without importing dashscope itself."""
    spec = importlib.util.find_spec("dashscope")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "resources" / "qwen.tiktoken"
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def qwen_encoding() -> tiktoken.Encoding:
    """The Qwen BPE with R1's added tokens; loaded once per process (~0.3 s)."""
    path = qwen_vocabulary_path()
    if path is None:
        raise FileNotFoundError("qwen.tiktoken not found: pip install dashscope")
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name="qwen-r1",
        pat_str=QWEN_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=R1_SPECIAL_TOKENS,
    )


def default_counter() -> TokenCounter:
    """The exact counter when possible, the approximate one otherwise (and say so)."""
    try:
        return QwenTokenCounter(qwen_encoding())
    except (FileNotFoundError, ValueError) as exc:
        log.warning("exact token counting unavailable (%s); using an approximation", exc)
        return ApproximateTokenCounter()
