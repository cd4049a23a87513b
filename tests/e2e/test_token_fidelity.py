"""Token-count fidelity: Parley's local prompt count equals the real vLLM's `/tokenize`.

Parley never asks the server how long a prompt is while fitting a conversation: it adds up the
per-message counts it stored (`QwenTokenCounter.count`) and the chat template's fixed overhead
(`prompt_tokens`). If that sum is off by even one token for some text, a prompt that "fits" can
be refused with a 400, or history is trimmed needlessly. So here a few hundred generated
conversations (fixed seed) go to the real server's ``POST /tokenize`` with ``messages`` — the
served tokenizer and chat template, generation prompt included — and every count must match
exactly. The texts mix English, Chinese, Japanese, Korean, emoji (ZWJ families, flags, skin
tones, keycaps), code blocks, whitespace runs, decomposed accents (the tokenizer normalises to
NFC), markdown and numbers, short and long, over 1–6 turns with the assistant's answers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio

from core.tokens import QwenTokenCounter, assistant_visible, prompt_tokens, qwen_encoding
from tests.e2e.vllm_server import RealVllm
from tools.test_model_script import SERVED_MODEL_NAME

pytestmark = pytest.mark.vllm

SEED = 20261130
CONVERSATIONS = 240
CONCURRENCY = 8

ENGLISH = [
    "Hello, world!",
    "What's the capital of France? I'd like to know.",
    "They're sure it'll work, but we've doubts.",
    "The quick brown fox jumps over the lazy dog.",
    "Can you explain recursion like I'm five?",
    "Parley streams answers into messengers and a terminal.",
    "e.g. U.S.A., Mr. O'Neil, rock'n'roll — and “smart quotes”…",
    "ALL CAPS SHOUTING!!! and mIxEd CaSe",
    "Prices: $3.50, €12, ¥1000, 50% off; 3.14159 ≈ π",
    "https://example.com/path?q=1&r=two#frag",
    "user@example.org wrote: >> quoted reply",
]
CHINESE = [
    "你好，世界！",
    "请用简单的语言解释一下量子力学。",
    "我今天很忙，明天再聊吧。",
    "深度求索的模型会先思考，然后回答。",
    "这个问题的答案是四十二。",
    "中文标点：“引号”、《书名》、（括号）……",
]
OTHER_SCRIPTS = [
    "こんにちは、元気ですか？カタカナとひらがな。",
    "안녕하세요, 반갑습니다.",
    "Привет, как дела? Ёлка.",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "Γειά σου Κόσμε",
    "ภาษาไทย ไม่มีช่องว่าง",
    "Tiếng Việt có dấu: Nguyễn, Phở, Đà Nẵng",
]
EMOJI = [
    "🎉",
    "👋🏽",
    "👨‍👩‍👧‍👦",
    "👩🏻‍💻",
    "🏳️‍🌈",
    "🇩🇪🇯🇵🇺🇸",
    "1️⃣ 2️⃣ #️⃣",
    "❤️‍🔥",
    "🧑‍🤝‍🧑",
    "😀😃😄😁",
    "✅ ❌ ⚠️",
]
CODE = [
    "```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```",
    "```js\nconst x = [1, 2, 3].map((n) => n * 2);\nconsole.log(x);\n```",
    "```\n$ ls -la /tmp\n\ttotal 0\n```",
    "`inline_code()` and **bold** and _italic_ and ~~strike~~",
    '```rust\nfn main() {\n    println!("{}", 40 + 2);\n}\n```',
    "| a | b |\n|---|---|\n| 1 | 2 |",
    '```json\n{"key": [true, false, null], "n": -1.5e10}\n```',
]
WHITESPACE = [
    "   ",
    "\n\n\n",
    "\t\t",
    "  \n  \n",
    " \t \n\t ",
    "\u00a0\u00a0",
    "\u3000",
    "\n",
    "          ",
]
# Decomposed forms that NFC composes (the served tokenizer normalises to NFC before BPE).
DECOMPOSED = [
    "Cafe\u0301",
    "e\u0301le\u0300ve",
    "n\u0303",
    "A\u030a",
    "\u1100\u1161\u11a8",  # Hangul jamo → 각
    "o\u0308\u0304",
    "\u0415\u0308",  # Cyrillic Е + diaeresis → Ё
    "a =\u0338 b",  # → ≠
]
# Text users may type that is a special token's text: the tokenizer reads it as that token.
SPECIAL_TEXT = ["<think>", "</think>", "<｜User｜>", "<｜Assistant｜>", "</think>\u0338"]
NUMBERS = ["0", "42", "1234567890", "3.14", "-7", "1,000,000", "2026-11-30", "12:34:56"]
GROUPS = [
    ENGLISH,
    CHINESE,
    OTHER_SCRIPTS,
    EMOJI,
    CODE,
    WHITESPACE,
    DECOMPOSED,
    NUMBERS,
    SPECIAL_TEXT,
]
WEIGHTS = [12, 8, 6, 6, 4, 4, 4, 4, 1]

# An earlier answer may still carry a reasoning block: the template keeps what follows </think>.
REASONING_PREFIX = "<think>\nLet me think about this step by step.\n</think>\n\n"


@dataclass(frozen=True, slots=True)
class Conversation:
    """Messages as sent to the server; the last one is the user's new message."""

    messages: list[dict[str, str]]


def _text(rng: random.Random, long: bool) -> str:
    """A message body: a run of fragments from mixed groups, joined by various separators."""
    pieces = rng.randint(20, 60) if long else rng.randint(1, 6)
    parts: list[str] = []
    for _ in range(pieces):
        group = rng.choices(GROUPS, WEIGHTS)[0]
        parts.append(rng.choice(group))
        parts.append(rng.choice(["", " ", " ", "\n", "\n\n", "  ", ", "]))
    text = "".join(parts)
    if rng.random() < 0.15:
        text = rng.choice(WHITESPACE) + text  # leading whitespace
    if rng.random() < 0.15:
        text = text + rng.choice(WHITESPACE)  # trailing whitespace
    return text or "?"


def generate(seed: int, count: int) -> list[Conversation]:
    """``count`` conversations of 1–6 turns; about one message in eight is long."""
    rng = random.Random(seed)
    conversations: list[Conversation] = []
    for _ in range(count):
        turns = rng.randint(1, 6)
        messages: list[dict[str, str]] = []
        for turn in range(turns):
            messages.append({"role": "user", "content": _text(rng, rng.random() < 0.12)})
            if turn < turns - 1:
                answer = _text(rng, rng.random() < 0.12)
                if rng.random() < 0.1:
                    answer = REASONING_PREFIX + answer
                messages.append({"role": "assistant", "content": answer})
        conversations.append(Conversation(messages))
    return conversations


def local_count(counter: QwenTokenCounter, messages: list[dict[str, str]]) -> int:
    """What Parley computes: stored per-message counts plus the template's overhead."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    answers = [assistant_visible(m["content"]) for m in messages if m["role"] == "assistant"]
    return prompt_tokens(
        sum(counter.count(text) for text in users),
        sum(counter.count(text) for text in answers),
        len(users),
        len(answers),
    )


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        yield session


async def remote_counts(
    http: aiohttp.ClientSession, root_url: str, conversations: list[Conversation]
) -> list[int]:
    """Ask the server's /tokenize for each conversation, a bounded number at a time."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(conversation: Conversation) -> int:
        body = {"model": SERVED_MODEL_NAME, "messages": conversation.messages}
        async with gate, http.post(f"{root_url}/tokenize", json=body) as resp:
            assert resp.status == 200, await resp.text()
            data = await resp.json()
        count = data["count"]
        assert isinstance(count, int)
        assert count == len(data["tokens"])
        return count

    return list(await asyncio.gather(*(one(c) for c in conversations)))


async def test_generated_corpus_covers_what_it_claims() -> None:
    conversations = generate(SEED, CONVERSATIONS)
    assert conversations == generate(SEED, CONVERSATIONS)  # deterministic
    texts = [m["content"] for c in conversations for m in c.messages]
    joined = "".join(texts)
    assert len(conversations) >= 200
    assert {len(c.messages) // 2 + 1 for c in conversations} == set(range(1, 7))
    needles = ("你好", "\u200d", "```", "\u0301", "\u0338", "   ", "\n\n\n", "<｜User｜>")
    for needle in needles:
        assert needle in joined, needle
    counter = QwenTokenCounter(qwen_encoding())
    sizes = [counter.count(t) for t in texts]
    assert min(sizes) <= 3
    assert max(sizes) >= 300


async def test_local_prompt_count_equals_vllm_tokenize(
    real_vllm_server: RealVllm, http: aiohttp.ClientSession
) -> None:
    conversations = generate(SEED, CONVERSATIONS)
    counter = QwenTokenCounter(qwen_encoding())
    local = [local_count(counter, c.messages) for c in conversations]
    remote = await remote_counts(http, real_vllm_server.root_url, conversations)
    mismatches = [
        (i, local_n, remote_n, conversations[i].messages)
        for i, (local_n, remote_n) in enumerate(zip(local, remote, strict=True))
        if local_n != remote_n
    ]
    assert not mismatches, (
        f"{len(mismatches)} of {len(conversations)} conversations counted differently "
        f"(index, Parley, vLLM, messages); first: {mismatches[:3]!r}"
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("e\u0301", id="combining-acute"),
        pytest.param("\u1100\u1161\u11a8", id="hangul-jamo"),
        pytest.param("Cafe\u0301 au lait, s'il vous plai\u0302t", id="french-decomposed"),
        pytest.param("\u212b and \u2126", id="singletons"),  # Å (angstrom) → Å, Ω (ohm) → Ω
        pytest.param("👨‍👩‍👧‍👦", id="zwj-family"),
        pytest.param("a<｜User｜>b</think>c", id="special-token-text"),
        pytest.param("\u0301leading mark", id="leading-combining-mark"),
        # NFC would merge ">" + U+0338 into "≯"; the tokenizer cuts out </think> first.
        pytest.param("a</think>\u0338b", id="special-token-then-combining-mark"),
    ],
)
async def test_single_message_counts_match(
    text: str, real_vllm_server: RealVllm, http: aiohttp.ClientSession
) -> None:
    """Small named cases, so a regression names its cause."""
    counter = QwenTokenCounter(qwen_encoding())
    messages = [{"role": "user", "content": text}]
    [remote] = await remote_counts(http, real_vllm_server.root_url, [Conversation(messages)])
    assert local_count(counter, messages) == remote
