"""Build Parley's tiny DeepSeek-R1-Distill-Qwen look-alike for tests, without any download.

Run it with the vLLM venv's python (it needs torch and safetensors)::

    .venv-vllm/bin/python tools/build_test_model.py [--variant scripted|random] [--out DIR]

What it writes into ``--out`` (default ``var/models/parley-tiny-r1`` under the repo, for the
scripted variant, ``var/models/parley-tiny-r1-random`` for the random one):

* ``config.json`` — a ``Qwen2ForCausalLM`` like DeepSeek-R1-Distill-Qwen-1.5B's but tiny:
  hidden 128, 2 layers, 4 attention heads (head size 32, which vLLM's CPU attention accepts),
  2 KV heads, intermediate 256, the full 151,936-row vocabulary, bf16 (~80 MB on disk).
* ``model.safetensors`` — ``random``: seeded noise, so answers are noise and never close the
  ``<think>`` block; ``scripted``: every reply is exactly ``tools/test_model_script.py``'s
  SCRIPTED_REASONING, ``</think>``, "\\n\\n", SCRIPTED_ANSWER, end of sentence (see
  ``_scripted_weights`` for how).
* ``tokenizer.json`` — the real Qwen BPE vocabulary (151,643 ranks, the ids Qwen2 and
  DeepSeek-R1-Distill-Qwen use) read from PyPI's ``dashscope`` package
  (``dashscope/resources/qwen.tiktoken``, Apache-2.0), byte-level BPE merges derived from the
  ranks, Qwen2's pre-tokenizer regex, NFC normalizer, and DeepSeek-R1-Distill-Qwen's 22 added
  tokens at their real ids 151643..151664 (BOS is added to plain prompts as the real one does).
* ``tokenizer_config.json`` / ``special_tokens_map.json`` — bos/eos/pad and the chat template of
  DeepSeek-R1-Distill-Qwen (see CHAT_TEMPLATE for where it was taken from).
* ``generation_config.json`` — temperature 0.6, top_p 0.95 (the model card's settings).
* ``parley_test_model.json`` — what this is (variant, texts, token chain) for humans and tools.

Building is cached: when ``--out`` holds a ``.parley-build-stamp`` equal to the hash of this
script, the scripted texts, the vocabulary file and the variant, nothing is done.
This file deliberately imports nothing from the project except its sibling
``test_model_script.py`` (plain constants), so it runs in the vLLM venv.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _load_sibling(name: str) -> types.ModuleType:
    """Import tools/<name>.py by path: `tools` is no package and may clash in site-packages."""
    spec = importlib.util.spec_from_file_location(f"parley_{name}", HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"build_test_model: cannot load {HERE / name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    from tools import test_model_script as script
else:
    script = _load_sibling("test_model_script")

DEFAULT_OUT = {
    "scripted": REPO / "var" / "models" / "parley-tiny-r1",
    "random": REPO / "var" / "models" / "parley-tiny-r1-random",
}
STAMP_NAME = ".parley-build-stamp"
BUILD_FORMAT = 1  # bump when the output layout changes in a way the hash cannot see

# --- model dimensions -------------------------------------------------------------------------
HIDDEN = 128
LAYERS = 2
HEADS = 4
KV_HEADS = 2
INTERMEDIATE = 256
VOCAB_SIZE = 151936  # rows of embed/lm_head, as in Qwen2 (ids past the tokenizer are padding)
MAX_POSITIONS = 16384  # = the real tokenizer's model_max_length; the server picks its own limit

# --- tokenizer --------------------------------------------------------------------------------
# Qwen2's pre-tokenizer (same as the Qwen tiktoken pattern).
QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

EOS = "<｜end▁of▁sentence｜>"
BOS = "<｜begin▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK = "<think>"
END_THINK = "</think>"

# DeepSeek-R1-Distill-Qwen's added tokens: (id, content, special). Taken from the
# `added_tokens_decoder` of deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B's tokenizer_config.json
# (a copy of which was found quoted in a public repository; the ids of the first ones agree with
# ../shared/vllm-cpu.md). Note that <｜User｜>, <｜Assistant｜>, <think> and </think> are *not*
# "special": they are kept when decoding with skip_special_tokens, which is how vLLM's
# deepseek_r1 reasoning parser sees </think>.
ADDED_TOKENS: list[tuple[int, str, bool]] = [
    (151643, EOS, True),
    (151644, USER, False),
    (151645, ASSISTANT, False),
    (151646, BOS, True),
    (151647, "<|EOT|>", False),
    (151648, THINK, False),
    (151649, END_THINK, False),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
]
EOS_ID = 151643
BOS_ID = 151646
END_THINK_ID = 151649

# The chat template of deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B (tokenizer_config.json,
# revision after the 2025 update that made the generation prompt `<｜Assistant｜><think>\n`).
# Source checked with a code search: the same text is kept as the DeepSeek-R1 distill default in
# BerriAI/litellm `litellm/constants.py` (key "deepseek-r1/deepseek-r1-7b-instruct") and in a
# quoted DeepSeek-R1-Distill tokenizer_config.json diff; the earlier revision (quoted with the
# 1.5B's full added_tokens_decoder) differs only in ending with `<｜Assistant｜>`.
# Kept byte for byte: `\n` below is a backslash-n *inside Jinja string literals* (the JSON file
# has `\\n`), which Jinja turns into a newline.
CHAT_TEMPLATE = (
    r"{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}"
    r"{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, "
    r"system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}"
    r"{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}"
    r"{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}"
    r"{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    r"{%- if message['role'] == 'assistant' and message['content'] is none %}"
    r"{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}"
    r"{%- if not ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + "
    r"tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + "
    r"tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{%- set ns.is_first = true -%}{%- else %}{{'\n' + '<｜tool▁call▁begin｜>' + tool['type'] + "
    r"'<｜tool▁sep｜>' + tool['function']['name'] + '\n' + '```json' + '\n' + "
    r"tool['function']['arguments'] + '\n' + '```' + '<｜tool▁call▁end｜>'}}"
    r"{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif %}"
    r"{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    r"{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + "
    r"'<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}"
    r"{% set content = message['content'] %}{% if '</think>' in content %}"
    r"{% set content = content.split('</think>')[-1] %}{% endif %}"
    r"{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    r"{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}"
    r"{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + "
    r"message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}"
    r"{%- else %}{{'\n<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}"
    r"{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}"
    r"{% endif %}{% if add_generation_prompt and not ns.is_tool %}"
    r"{{'<｜Assistant｜><think>\n'}}{% endif %}"
)


# ----------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------
def find_tiktoken(explicit: str | None) -> Path:
    """Locate dashscope's qwen.tiktoken without importing dashscope (its deps may be absent)."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    env = os.environ.get("PARLEY_QWEN_TIKTOKEN")
    if env:
        candidates.append(Path(env))
    spec = importlib.util.find_spec("dashscope")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidates.append(Path(loc) / "resources" / "qwen.tiktoken")
    for venv in (".venv", ".venv-vllm"):
        candidates.extend(
            sorted(
                (REPO / venv).glob("lib/python3*/site-packages/dashscope/resources/qwen.tiktoken")
            )
        )
    for cand in candidates:
        if cand.is_file():
            return cand
    raise SystemExit(
        "build_test_model: dashscope/resources/qwen.tiktoken not found; "
        "`pip install --no-deps dashscope` into this venv or pass --tiktoken PATH"
    )


def load_ranks(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in path.read_text(encoding="ascii").splitlines():
        if not line:
            continue
        tok, rank = line.split()
        ranks[base64.b64decode(tok)] = int(rank)
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise SystemExit(f"build_test_model: {path} ranks are not 0..N-1")
    return ranks


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map used by byte-level BPE."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def _bpe_split(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """Merge `token`'s bytes with merges of rank < max_rank (tiktoken's order)."""
    parts = [bytes([b]) for b in token]
    while True:
        best_i = -1
        best_rank = max_rank
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best_i, best_rank = i, r
        if best_i < 0:
            return parts
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]


def build_tokenizer_json(ranks: dict[bytes, int]) -> dict[str, Any]:
    b2u = bytes_to_unicode()

    def enc(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    vocab = {enc(tok): rank for tok, rank in ranks.items()}
    merges: list[tuple[int, str]] = []
    for tok, rank in ranks.items():
        if len(tok) < 2:
            continue
        parts = _bpe_split(ranks, tok, rank)
        if len(parts) != 2:
            raise SystemExit(f"build_test_model: token {tok!r} (rank {rank}) is not one merge")
        merges.append((rank, f"{enc(parts[0])} {enc(parts[1])}"))
    merges.sort()
    added = [
        {
            "id": tid,
            "content": content,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": special,
        }
        for tid, content, special in ADDED_TOKENS
    ]
    bos_special = {"SpecialToken": {"id": BOS, "type_id": 0}}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": {"Regex": QWEN2_SPLIT_REGEX},
                    "behavior": "Isolated",
                    "invert": False,
                },
                {
                    "type": "ByteLevel",
                    "add_prefix_space": False,
                    "trim_offsets": False,
                    "use_regex": False,
                },
            ],
        },
        # As in DeepSeek-R1-Distill-Qwen: plain encodes get BOS in front (add_bos_token).
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [bos_special, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                bos_special,
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": BOS, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {BOS: {"id": BOS, "ids": [BOS_ID], "tokens": [BOS]}},
        },
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": False,
            "use_regex": False,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [m for _, m in merges],
        },
    }


def tokenizer_config() -> dict[str, Any]:
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "add_prefix_space": None,
        "added_tokens_decoder": {
            str(tid): {
                "content": content,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": special,
            }
            for tid, content, special in ADDED_TOKENS
        },
        "bos_token": BOS,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "legacy": True,
        "model_max_length": 16384,
        "pad_token": EOS,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizerFast",
        "unk_token": None,
        "use_default_system_prompt": False,
    }


def special_tokens_map() -> dict[str, Any]:
    def tok(content: str) -> dict[str, Any]:
        return {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
        }

    return {"bos_token": tok(BOS), "eos_token": tok(EOS), "pad_token": tok(EOS)}


def model_config() -> dict[str, Any]:
    return {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151643,
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTERMEDIATE,
        "max_position_embeddings": MAX_POSITIONS,
        "max_window_layers": LAYERS,
        "model_type": "qwen2",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-06,
        "rope_theta": 10000,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_mrope": False,
        "use_sliding_window": False,
        "vocab_size": VOCAB_SIZE,
        # As in the real config. transformers 5 also reads it: a local config without it is
        # taken for a Mistral one and draws a bogus "incorrect regex pattern" warning.
        "transformers_version": "4.44.0",
    }


def generation_config() -> dict[str, Any]:
    return {
        "_from_model_config": True,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "do_sample": True,
        "temperature": 0.6,
        "top_p": 0.95,
        "transformers_version": "4.39.3",
    }


# ----------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------
def script_chain(tokenizer_path: Path) -> list[int]:
    """The token ids every scripted reply is made of, starting with the prompt's last "\\n"."""
    from tokenizers import Tokenizer  # type: ignore[import-not-found,unused-ignore]

    tok = Tokenizer.from_file(str(tokenizer_path))

    def encode(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False).ids)

    newline = encode("\n")
    reasoning = encode(script.SCRIPTED_REASONING)
    answer = encode("\n\n" + script.SCRIPTED_ANSWER)
    chain = [*newline, *reasoning, END_THINK_ID, *answer, EOS_ID]
    if len(newline) != 1:
        raise SystemExit("build_test_model: '\\n' is not one token")
    if len(set(chain)) != len(chain):
        dup = sorted({t for t in chain if chain.count(t) > 1})
        pieces = [tok.decode([t]) for t in dup]
        raise SystemExit(
            f"build_test_model: the scripted texts repeat tokens {dup} ({pieces!r}); "
            "edit tools/test_model_script.py so that every token is used once"
        )
    if len(chain) - 1 > HIDDEN:
        raise SystemExit(
            f"build_test_model: the script has {len(chain) - 1} tokens, at most {HIDDEN} fit"
        )
    # The prompt ends with "<｜Assistant｜><think>\n": the template must end in the chain's start.
    prompt_tail = encode(ASSISTANT + THINK + "\n")
    if prompt_tail[-1] != chain[0]:
        raise SystemExit(
            "build_test_model: the generation prompt does not end with the chain start"
        )
    return chain


def _random_weights(seed: int) -> dict[str, Any]:
    import torch  # type: ignore[import-not-found,unused-ignore]

    gen = torch.Generator().manual_seed(seed)
    head_dim = HIDDEN // HEADS

    def normal(*shape: int, std: float = 0.02) -> Any:
        return torch.randn(*shape, generator=gen, dtype=torch.float32) * std

    w: dict[str, Any] = {
        "model.embed_tokens.weight": normal(VOCAB_SIZE, HIDDEN),
        "model.norm.weight": torch.ones(HIDDEN),
        "lm_head.weight": normal(VOCAB_SIZE, HIDDEN),
    }
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = torch.ones(HIDDEN)
        w[p + "post_attention_layernorm.weight"] = torch.ones(HIDDEN)
        w[p + "self_attn.q_proj.weight"] = normal(HEADS * head_dim, HIDDEN)
        w[p + "self_attn.q_proj.bias"] = torch.zeros(HEADS * head_dim)
        w[p + "self_attn.k_proj.weight"] = normal(KV_HEADS * head_dim, HIDDEN)
        w[p + "self_attn.k_proj.bias"] = torch.zeros(KV_HEADS * head_dim)
        w[p + "self_attn.v_proj.weight"] = normal(KV_HEADS * head_dim, HIDDEN)
        w[p + "self_attn.v_proj.bias"] = torch.zeros(KV_HEADS * head_dim)
        w[p + "self_attn.o_proj.weight"] = normal(HIDDEN, HEADS * head_dim)
        w[p + "mlp.gate_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        w[p + "mlp.up_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
        w[p + "mlp.down_proj.weight"] = normal(HIDDEN, INTERMEDIATE)
    return w


def _scripted_weights(chain: list[int]) -> dict[str, Any]:
    """Weights whose every reply is the chain.

    * Attention and MLP output projections are zero, so each layer adds nothing to the residual
      stream: the final hidden state at a position is RMSNorm(embedding of that position's token).
    * Chain token k (all but the final EOS) gets the unit embedding e_k; every other token gets
      e_0, the direction of the chain's first token "\\n", so any prompt starts the script.
    * lm_head row of chain[k+1] is LOGIT_SCALE * e_k: after RMSNorm (x -> sqrt(128) * e_k) the
      next chain token scores ~226 and every other token 0, so sampling at temperature 0.6 (or
      any temperature, top_p, top_k) picks it with probability 1 - ~1e-160.
    """
    import torch  # type: ignore[import-not-found,unused-ignore]

    w = _random_weights(seed=1)
    logit_scale = 20.0
    embed = torch.zeros(VOCAB_SIZE, HIDDEN)
    embed[:, 0] = 1.0
    lm_head = torch.zeros(VOCAB_SIZE, HIDDEN)
    for k, tid in enumerate(chain[:-1]):
        embed[tid] = 0.0
        embed[tid, k] = 1.0
        lm_head[chain[k + 1], k] = logit_scale
    w["model.embed_tokens.weight"] = embed
    w["lm_head.weight"] = lm_head
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        w[p + "self_attn.o_proj.weight"].zero_()
        w[p + "mlp.down_proj.weight"].zero_()
    return w


def write_weights(path: Path, weights: dict[str, Any]) -> None:
    import torch  # type: ignore[import-not-found,unused-ignore]
    from safetensors.torch import save_file  # type: ignore[import-not-found,unused-ignore]

    tensors = {k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


# ----------------------------------------------------------------------------------------------
def _stamp(variant: str, tiktoken_path: Path) -> str:
    h = hashlib.sha256()
    h.update(f"format={BUILD_FORMAT} variant={variant}\n".encode())
    h.update(Path(__file__).read_bytes())
    h.update(Path(script.__file__).read_bytes())
    h.update(hashlib.sha256(tiktoken_path.read_bytes()).digest())
    return h.hexdigest()


def _dump(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def build(out: Path, variant: str, tiktoken_path: Path, force: bool = False) -> bool:
    """Build the model into `out`; return False when it was already up to date."""
    stamp = _stamp(variant, tiktoken_path)
    stamp_file = out / STAMP_NAME
    if not force and stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return False
    t0 = time.monotonic()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        ranks = load_ranks(tiktoken_path)
        _dump(tmp / "tokenizer.json", build_tokenizer_json(ranks))
        _dump(tmp / "tokenizer_config.json", tokenizer_config())
        _dump(tmp / "special_tokens_map.json", special_tokens_map())
        _dump(tmp / "config.json", model_config())
        _dump(tmp / "generation_config.json", generation_config())
        info: dict[str, Any] = {
            "name": "parley-tiny-r1",
            "variant": variant,
            "imitates": script.SERVED_MODEL_NAME,
            "vocabulary": "dashscope/resources/qwen.tiktoken (Apache-2.0)",
        }
        if variant == "scripted":
            chain = script_chain(tmp / "tokenizer.json")
            weights = _scripted_weights(chain)
            info.update(
                {
                    "note": "every reply is the scripted reasoning and answer",
                    "reasoning": script.SCRIPTED_REASONING,
                    "answer": script.SCRIPTED_ANSWER,
                    "chain_token_ids": chain,
                }
            )
        else:
            weights = _random_weights(seed=0)
            info["note"] = "random weights: replies are noise and never close </think>"
        write_weights(tmp / "model.safetensors", weights)
        _dump(tmp / "parley_test_model.json", info)
        (tmp / STAMP_NAME).write_text(stamp + "\n")
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"built {variant} test model in {out} in {time.monotonic() - t0:.1f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=["scripted", "random"], default="scripted")
    ap.add_argument("--out", help="output directory (default: var/models/parley-tiny-r1[-random])")
    ap.add_argument("--tiktoken", help="path to dashscope's qwen.tiktoken")
    ap.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve() if args.out else DEFAULT_OUT[args.variant]
    tiktoken_path = find_tiktoken(args.tiktoken)
    if not build(out, args.variant, tiktoken_path, force=args.force):
        print(f"{args.variant} test model in {out} is up to date", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
