"""Context fitting against the real vLLM with a small context (the session server's 2048 tokens).

Parley fits each prompt from its own token counts, never by trial and error against the server:
the newest whole turns that fit ``context - LLM_MAX_TOKENS - margin`` are sent, older ones are
left out, and the user is told once, when that first happens. Here several conversations with
messages of very different sizes (a few tokens to most of the budget; English, Chinese, emoji,
code) run over a hundred turns through ChatService against the real server, which would answer
any overflow with a 400. Every turn must be answered by the first request, the server's own
``usage.prompt_tokens`` must equal Parley's count of what it sent, and trimming must drop only
what it has to. A message larger than the whole budget is refused before reaching the server.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from bots.runtime import Runtime, open_runtime
from core.conversation import ConversationKey, IncomingMessage, Role
from core.llm.client import LLMClient, ModelInfo
from core.llm.events import ChatMessage, SamplingParams, StreamEvent
from core.phrases import Phrases
from core.results import Outcome, TurnResult
from core.settings import CoreSettings
from core.sink import SinkLimits
from core.store.keys import KeySpace
from core.tokens import (
    ASSISTANT_OVERHEAD,
    PROMPT_OVERHEAD,
    USER_OVERHEAD,
    QwenTokenCounter,
    prompt_tokens,
    qwen_encoding,
)
from tests.e2e.vllm_server import RealVllm
from tests.services import RedisServer
from tests.support.sinks import RecordingSink
from tools.test_model_script import SCRIPTED_ANSWER

pytestmark = pytest.mark.vllm

SEED = 4242
CONVERSATIONS = 8  # run side by side: vLLM batches them
TURNS = 13  # per conversation: 104 turns in all
MAX_TOKENS = 256  # LLM_MAX_TOKENS: the reply's reserved share of the context
TRIMMED = "Older messages were left out"
ANSWERED = Outcome.ANSWERED

FRAGMENTS = [
    "Could you summarise the previous answer in two sentences?",
    "The meeting moved to Thursday at 10:30, room 4B.",
    "请把这段话翻译成英文，并解释其中的成语。",
    "我们明天去爬山，如果天气好的话。",
    "Here is the stack trace I got: KeyError: 'user_id' at line 42.",
    "```python\nfor i in range(10):\n    print(i * i)\n```",
    "`git rebase -i HEAD~3` then squash the fixups.",
    "🎉🎉 great news 👨‍👩‍👧‍👦 the whole family is coming 🇯🇵",
    "Numbers: 3.14159, 2.71828, 1.41421, 1,000,000 and 2026-11-30.",
    "Résumé, naïve café, Ångström — accents everywhere.",
    "    indented line with trailing spaces    ",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
]


@dataclass
class TappedLLM:
    """The real model client, recording every request it is asked to stream."""

    inner: LLMClient
    requests: list[list[ChatMessage]] = field(default_factory=list)

    def stream(
        self, messages: Sequence[ChatMessage], params: SamplingParams, *, affinity: str = ""
    ) -> AsyncIterator[StreamEvent]:
        self.requests.append(list(messages))
        return self.inner.stream(messages, params, affinity=affinity)

    async def model_info(self, *, affinity: str = "") -> ModelInfo:
        return await self.inner.model_info(affinity=affinity)


def tap(runtime: Runtime) -> TappedLLM:
    tapped = TappedLLM(runtime.service.runner.answerer.llm)
    runtime.service.runner.answerer.llm = tapped
    return tapped


def settings_for(base_url: str, redis_server: RedisServer, **overrides: Any) -> CoreSettings:
    return CoreSettings(
        _env_file=None,
        llm_base_url=base_url,
        redis_url=redis_server.url,
        llm_max_tokens=MAX_TOKENS,
        # Greedy decoding: sampling does not change fitting, and on a CPU top-p over the
        # 152k-token vocabulary costs far more per token than the tiny model itself (this test
        # took 92 s with it, about 30 s without); the scripted model answers the same either way.
        llm_temperature=0.0,
        llm_top_p=1.0,
        llm_retries=0,
        quota_messages_per_minute=0,  # no rate quota: these tests send fast on purpose
        llm_first_token_timeout=60,
        llm_idle_timeout=30,
        lock_lease_seconds=10,
        **overrides,
    )


def sink() -> RecordingSink:
    return RecordingSink(SinkLimits(max_length=4000, min_interval=0.0))


def counter() -> QwenTokenCounter:
    return QwenTokenCounter(qwen_encoding())


def text_of(rng: random.Random, tokens: int) -> str:
    """A message of at least ``tokens`` tokens (mixed scripts, code, emoji), trimmed."""
    count = counter().count
    parts: list[str] = []
    while True:
        parts.append(rng.choice(FRAGMENTS))
        parts.append(rng.choice([" ", "\n", "\n\n", "  "]))
        text = "".join(parts).strip()
        if count(text) >= tokens:
            return text


def exact_text(tokens: int) -> str:
    """Plain words of exactly ``tokens`` tokens."""
    words = ["one", " two", " three", " four", " five", " six", " seven", " eight"]
    text = "".join(words[i % len(words)] for i in range(tokens))
    assert counter().count(text) == tokens
    return text


def sizes(rng: random.Random, turns: int, budget: int) -> list[int]:
    """Target sizes: mostly small and medium, some large, one that takes most of the budget."""
    result = [
        rng.choice([3, 8, 20, 40, 60, 90, 120, 160, 220, 300, 420, 600, 800]) for _ in range(turns)
    ]
    result[rng.randrange(turns // 2, turns)] = budget - 120  # leaves room for no earlier turn
    return result


def local_prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    count = counter().count
    users = [m.content for m in messages if m.role == "user"]
    answers = [m.content for m in messages if m.role == "assistant"]
    return prompt_tokens(sum(map(count, users)), sum(map(count, answers)), len(users), len(answers))


@dataclass
class Conversation:
    key: ConversationKey
    texts: list[str]
    results: list[TurnResult] = field(default_factory=list)
    notices: list[bool] = field(default_factory=list)  # told that older turns were left out
    requests: list[list[ChatMessage]] = field(default_factory=list)


async def drive(settings: CoreSettings, conversation: Conversation) -> None:
    """Send every message of one conversation in order, each after the previous is answered."""
    async with open_runtime(settings) as rt:
        tapped = tap(rt)
        for text in conversation.texts:
            out = sink()
            result = await rt.service.handle(
                IncomingMessage(conversation.key, text, user_id=conversation.key.user), out
            )
            conversation.results.append(result)
            conversation.notices.append(any(TRIMMED in t for t in out.texts()))
        conversation.requests = tapped.requests


async def test_a_hundred_turns_fit_a_small_context_without_a_single_overflow(
    real_vllm_server: RealVllm, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    assert TRIMMED in Phrases().trimmed
    settings = settings_for(real_vllm_server.base_url, redis_server)
    async with open_runtime(settings) as rt:
        limits = await rt.service.runner.answerer.limits()
    assert limits.context_tokens == real_vllm_server.max_model_len
    assert limits.reply_tokens == MAX_TOKENS
    budget = limits.prompt_budget

    rng = random.Random(SEED)
    conversations = [
        Conversation(
            ConversationKey("e2e", "context", f"user{n}"),
            [text_of(rng, size) for size in sizes(rng, TURNS, budget)],
        )
        for n in range(CONVERSATIONS)
    ]
    for conversation in conversations:  # each one far more than one context holds
        assert sum(map(counter().count, conversation.texts)) > 1.5 * budget

    await asyncio.gather(*(drive(settings, c) for c in conversations))

    count = counter().count
    told_wrongly: list[tuple[str, list[int], int, list[tuple[int, int, int]]]] = []
    for conversation in conversations:
        key, results = conversation.key, conversation.results
        assert len(results) == TURNS
        bad = [(i, r.outcome, r.error) for i, r in enumerate(results) if r.outcome != ANSWERED]
        assert not bad, f"{key}: turns not answered: {bad}"
        assert all(r.answer == SCRIPTED_ANSWER and r.saved for r in results)
        # One request per turn: the server never refused a prompt (no trim-and-retry).
        assert len(conversation.requests) == TURNS

        for i, (result, sent) in enumerate(zip(results, conversation.requests, strict=True)):
            assert all(m.role in ("user", "assistant") for m in sent)
            assert sent[-1] == ChatMessage("user", conversation.texts[i])
            # vLLM's usage equals Parley's count of what it sent, and it is within budget.
            assert result.usage_prompt == local_prompt_tokens(sent), (key, i)
            assert result.usage_prompt <= budget
            kept_turns = (len(sent) - 1) // 2
            assert kept_turns + result.dropped_turns == i
            # The kept turns are the newest ones, and only what had to go was left out.
            earlier = [(conversation.texts[j], SCRIPTED_ANSWER) for j in range(i)]
            kept = [(m.content, n.content) for m, n in zip(sent[:-1:2], sent[1:-1:2], strict=True)]
            assert kept == earlier[i - kept_turns :]
            if result.dropped_turns:
                user_text, answer = earlier[i - kept_turns - 1]
                next_older = count(user_text) + USER_OVERHEAD + count(answer) + ASSISTANT_OVERHEAD
                assert result.usage_prompt + next_older > budget, (key, i)
        assert max(r.dropped_turns for r in results) >= 3

        # Nothing is forgotten in the store: fitting only shapes the prompt.
        stored = await redis_history(redis_client, key)
        assert stored == [t for text in conversation.texts for t in (text, SCRIPTED_ANSWER)]

        # Told exactly once: on the first turn that had to leave something out.
        first_drop = next(i for i, r in enumerate(results) if r.dropped_turns)
        told = [i for i, notice in enumerate(conversation.notices) if notice]
        if told != [first_drop]:
            turns = [
                (count(t), r.dropped_turns, r.usage_prompt)
                for t, r in zip(conversation.texts, results, strict=True)
            ]
            told_wrongly.append((str(key), told, first_drop, turns))
    assert not told_wrongly, (
        "the trimming notice was not shown exactly once, on the first turn that dropped history "
        f"(budget {budget}; key, turns told, first drop, [(message tokens, dropped, prompt)]): "
        f"{told_wrongly}"
    )


async def redis_history(client: aioredis.Redis, key: ConversationKey) -> list[str]:
    """A conversation's stored message texts, read straight from Redis."""
    raws = await client.lrange(KeySpace().history(key), 0, -1)
    return [str(orjson.loads(raw)["c"]) for raw in raws]


async def test_message_larger_than_the_budget_is_refused_before_the_server(
    real_vllm_server: RealVllm, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    key = ConversationKey("e2e", "context", "bigtalker")
    settings = settings_for(real_vllm_server.base_url, redis_server)
    async with open_runtime(settings) as rt:
        tapped = tap(rt)
        budget = (await rt.service.runner.answerer.limits()).prompt_budget
        limit = budget - PROMPT_OVERHEAD - USER_OVERHEAD  # the largest message that fits alone

        too_big = exact_text(limit + 1)
        refused_sink = sink()
        refused = await rt.service.handle(IncomingMessage(key, too_big, user_id="b"), refused_sink)
        requests_after_refusal = len(tapped.requests)

        huge_sink = sink()
        huge = await rt.service.handle(
            IncomingMessage(key, exact_text(3 * real_vllm_server.max_model_len), user_id="b"),
            huge_sink,
        )

        just_fits = await rt.service.handle(
            IncomingMessage(key, exact_text(limit), user_id="b"), sink()
        )
        history = await rt.service.runner.store.load(key)

    phrases = Phrases()
    assert refused.outcome is Outcome.REFUSED
    assert refused_sink.texts() == [phrases.too_long.format(tokens=limit + 1, limit=limit)]
    assert f"{limit + 1} tokens" in refused_sink.texts()[0]
    assert f"the limit is {limit}" in refused_sink.texts()[0]
    assert huge.outcome is Outcome.REFUSED
    size = 3 * real_vllm_server.max_model_len
    assert huge_sink.texts() == [phrases.too_long.format(tokens=size, limit=limit)]
    assert requests_after_refusal == 0
    # The boundary: a message of exactly the limit goes out, and the server takes it whole.
    assert len(tapped.requests) == 1
    assert just_fits.outcome is Outcome.ANSWERED
    assert just_fits.answer == SCRIPTED_ANSWER
    assert just_fits.usage_prompt == budget
    assert [m.role for m in history] == [Role.USER, Role.ASSISTANT]


async def test_told_when_the_last_answer_is_what_tips_history_over_the_budget(
    real_vllm_server: RealVllm, redis_server: RedisServer, redis_client: aioredis.Redis
) -> None:
    """The first turn that leaves history out says so, whatever made history too long.

    Turn 1's prompt fills the budget to within a few tokens; its answer is then stored, so
    history alone (that prompt plus the answer) exceeds the budget. Turn 2 must drop turn 1 and
    is the first turn that drops anything, so it must carry the notice.
    """
    key = ConversationKey("e2e", "context", "tipping")
    settings = settings_for(real_vllm_server.base_url, redis_server)
    answer_cost = counter().count(SCRIPTED_ANSWER) + ASSISTANT_OVERHEAD
    async with open_runtime(settings) as rt:
        budget = (await rt.service.runner.answerer.limits()).prompt_budget
        first_size = budget - PROMPT_OVERHEAD - USER_OVERHEAD - 5  # the prompt leaves 5 tokens
        assert answer_cost > 5
        first_sink, second_sink = sink(), sink()
        first = await rt.service.handle(
            IncomingMessage(key, exact_text(first_size), user_id="t"), first_sink
        )
        second = await rt.service.handle(IncomingMessage(key, "And now?", user_id="t"), second_sink)
    assert first.outcome is Outcome.ANSWERED
    assert first.usage_prompt == budget - 5
    assert first.dropped_turns == 0
    assert not any(TRIMMED in t for t in first_sink.texts())
    assert second.outcome is Outcome.ANSWERED
    assert second.dropped_turns == 1
    assert any(TRIMMED in t for t in second_sink.texts()), (
        "turn 2 left turn 1 out without telling the user (core/context.py fit(): first_drop "
        "compares the whole stored history, last answer included, with the budget)"
    )
