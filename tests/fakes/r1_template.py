"""DeepSeek-R1-Distill-Qwen's chat template and tokenizer in plain Python, so fakes count like vLLM.

Sources (verbatim copies found 2026-11-30 with a public code search):

* Chat template: ``chat_template`` of ``tokenizer_config.json`` in the Hugging Face repository
  ``deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B`` (the 7B/14B/32B ones carry the same template),
  in the revision whose generation prompt is ``<｜Assistant｜><think>\\n``. Verbatim copies: the
  ``deepseek-r1/deepseek-r1-7b-instruct`` entry of LiteLLM's ``constants.py`` and a
  Bedrock custom-model-import guide that diffs this file. The first revision (still copied in
  GitHub ``Evilcarbon/DeepSeek-R1-Distill-Qwen-32B``) ended with a bare ``<｜Assistant｜>``;
  vLLM as run in /work/shared/vllm-cpu.md used the newer one (prompts end ``<think>\\n``).
* Added tokens: ``added_tokens`` of that repository's ``tokenizer.json`` (ids 151643-151664, also
  in ``added_tokens_decoder`` of ``tokenizer_config.json``), normalizer NFC, Split pre-tokenizer
  regex = ``QWEN_PATTERN``, byte-level BPE; read from a verbatim copy of the 1.5B tokenizer files.
* Ranks: ``dashscope/resources/qwen.tiktoken`` (Apache-2.0), 151,643 ranks, the same ids as Qwen2.
"""

from __future__ import annotations

import base64
import functools
import importlib.util
import re
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import tiktoken

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK_START = "<think>"
THINK_END = "</think>"

# tokenizer.json "added_tokens" of deepseek-ai/DeepSeek-R1-Distill-Qwen-*, in id order.
# HF splits all of them out of the text (whatever their "special" flag), so the fake does too.
ADDED_TOKENS: dict[str, int] = {
    EOS: 151643,  # special
    USER: 151644,
    ASSISTANT: 151645,
    BOS: 151646,  # special
    "<|EOT|>": 151647,
    THINK_START: 151648,
    THINK_END: 151649,
    "<|quad_start|>": 151650,  # special
    "<|quad_end|>": 151651,  # special
    "<|vision_start|>": 151652,  # special
    "<|vision_end|>": 151653,  # special
    "<|vision_pad|>": 151654,  # special
    "<|image_pad|>": 151655,  # special
    "<|video_pad|>": 151656,  # special
    "<tool_call>": 151657,
    "</tool_call>": 151658,
    "<|fim_prefix|>": 151659,
    "<|fim_middle|>": 151660,
    "<|fim_suffix|>": 151661,
    "<|fim_pad|>": 151662,
    "<|repo_name|>": 151663,
    "<|file_sep|>": 151664,
}

EOS_ID = ADDED_TOKENS[EOS]
BOS_ID = ADDED_TOKENS[BOS]
THINK_END_ID = ADDED_TOKENS[THINK_END]

# The Split pre-tokenizer regex of Qwen2's tokenizer.json.
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_ADDED_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in ADDED_TOKENS) + ")")


def _qwen_ranks_path() -> Path:
    """Find the Qwen ranks file shipped inside the dashscope wheel, the only offline copy here."""
    spec = importlib.util.find_spec("dashscope")
    if spec is None or spec.origin is None:
        raise RuntimeError("dashscope is not installed; it carries resources/qwen.tiktoken")
    return Path(spec.origin).parent / "resources" / "qwen.tiktoken"


@functools.cache
def qwen_encoding() -> tiktoken.Encoding:
    """Build (once) the Qwen2 BPE with R1-Distill's added tokens at their real ids."""
    ranks: dict[bytes, int] = {}
    for line in _qwen_ranks_path().read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name="deepseek-r1-distill-qwen",
        pat_str=QWEN_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=dict(ADDED_TOKENS),
    )


def encode_text(text: str) -> list[int]:
    """Encode plain text as ordinary tokens only (model output: tag-like text stays text)."""
    return qwen_encoding().encode_ordinary(unicodedata.normalize("NFC", text))


def encode_prompt(text: str, *, add_special_tokens: bool = False) -> list[int]:
    """Encode like the HF tokenizer: added tokens split out, NFC on the rest, BOS on request."""
    enc = qwen_encoding()
    ids: list[int] = [BOS_ID] if add_special_tokens else []
    for i, piece in enumerate(_ADDED_SPLIT.split(text)):
        if i % 2:
            ids.append(ADDED_TOKENS[piece])
        elif piece:
            ids.extend(enc.encode_ordinary(unicodedata.normalize("NFC", piece)))
    return ids


@functools.cache
def _byte_level_alphabet() -> dict[int, str]:
    """GPT-2's bytes_to_unicode table, which HF uses to spell byte-level tokens."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def token_strs(ids: Sequence[int]) -> list[str]:
    """Spell ids as HF ``convert_ids_to_tokens`` does (e.g. ``Ġworld``), for vLLM's /tokenize."""
    enc = qwen_encoding()
    alphabet = _byte_level_alphabet()
    names = {v: k for k, v in ADDED_TOKENS.items()}
    out: list[str] = []
    for i in ids:
        if i in names:
            out.append(names[i])
        else:
            out.append("".join(alphabet[b] for b in enc.decode_single_token_bytes(i)))
    return out


def _content(message: Mapping[str, Any]) -> str | None:
    """Return a message's content the way vLLM hands it to the template (parts joined by \\n)."""
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


def render_r1_prompt(
    messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True
) -> str:
    """Render the R1-Distill-Qwen Jinja template, branch for branch, without jinja2.

    Quirks kept from the original: only the *last* system message is used (each one overwrites
    ``ns.system_prompt``), it goes right after BOS with no separator; assistant content keeps only
    what follows its last ``</think>``; there is no separator after a user turn; tool-call and
    tool-output branches are reproduced as written, including the unclosed first tool call.
    """
    system_prompt = ""
    for message in messages:
        if message.get("role") == "system":
            system_prompt = _content(message) or ""
    is_first = False
    is_tool = False
    is_output_first = True
    out = [BOS, system_prompt]
    for message in messages:
        role = message.get("role")
        content = _content(message)
        if role == "user":
            is_tool = False
            out.append(USER + (content or ""))
        if role == "assistant" and content is None:
            is_tool = False
            for tool in message.get("tool_calls") or []:
                call = (
                    "<｜tool▁call▁begin｜>"
                    + tool["type"]
                    + "<｜tool▁sep｜>"
                    + tool["function"]["name"]
                    + "\n```json\n"
                    + tool["function"]["arguments"]
                    + "\n```<｜tool▁call▁end｜>"
                )
                if not is_first:
                    out.append(ASSISTANT + "<｜tool▁calls▁begin｜>" + call)
                    is_first = True
                else:
                    out.append("\n" + call + "<｜tool▁calls▁end｜>" + EOS)
        if role == "assistant" and content is not None:
            if is_tool:
                out.append("<｜tool▁outputs▁end｜>" + content + EOS)
                is_tool = False
            else:
                out.append(ASSISTANT + content.split(THINK_END)[-1] + EOS)
        if role == "tool":
            is_tool = True
            if is_output_first:
                out.append(
                    "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>"
                    + (content or "")
                    + "<｜tool▁output▁end｜>"
                )
                is_output_first = False
            else:
                out.append("\n<｜tool▁output▁begin｜>" + (content or "") + "<｜tool▁output▁end｜>")
    if is_tool:
        out.append("<｜tool▁outputs▁end｜>")
    if add_generation_prompt and not is_tool:
        out.append(ASSISTANT + THINK_START + "\n")
    return "".join(out)
