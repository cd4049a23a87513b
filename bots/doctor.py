"""`parley doctor`: checks what Parley depends on and says how to fix what is wrong."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from redis.asyncio.cluster import RedisCluster

from bots.runtime import open_redis
from core.errors import BotError, ConfigError, LLMError
from core.llm.client import ModelInfo, OpenAICompatibleClient, Timeouts
from core.llm.events import ChatMessage, ReasoningDelta, SamplingParams, TextDelta
from core.persona_file import load_personas
from core.settings import CoreSettings
from core.tokens import QwenTokenCounter, default_counter, prompt_tokens

_SAMPLE = [
    ChatMessage("user", "Hello! Wie geht's? 你好 🎉"),
    ChatMessage("assistant", "Fine, thanks. `code` and **bold**."),
    ChatMessage("user", "What is 2 + 2?"),
]


@dataclass
class Report:
    """Collects check results and prints them as they come."""

    out: TextIO
    failed: int = 0

    def ok(self, what: str) -> None:
        """A passing check."""
        self.out.write(f"✓ {what}\n")

    def warn(self, what: str, fix: str) -> None:
        """Works, but not as well as it should."""
        self.out.write(f"! {what}\n    → {fix}\n")

    def fail(self, what: str, fix: str) -> None:
        """Broken: Parley will not work until this is fixed."""
        self.failed += 1
        self.out.write(f"✗ {what}\n    → {fix}\n")


async def _check_redis(settings: CoreSettings, report: Report) -> None:
    """Redis reachable and keeping data."""
    try:
        async with open_redis(settings) as (redis, description):
            if isinstance(redis, RedisCluster):
                state = await redis.cluster_info()
                primaries = len(redis.get_primaries())
                slots = state.get("cluster_slots_ok")
                report.ok(f"{description}: {primaries} primaries, {slots} of 16384 slots served")
                return
            info = await redis.info("server")
            version = info.get("redis_version", "?") if isinstance(info, dict) else "?"
            report.ok(f"Redis {version} at {description}")
    except ConfigError as exc:
        report.fail(
            str(exc),
            "start Redis (e.g. `apt-get install redis-server`) or fix REDIS_URL; "
            "unset REDIS_URL to use a private local redis-server",
        )


async def _check_model(settings: CoreSettings, report: Report) -> None:
    """Every model server of LLM_BASE_URL; Parley works while at least one answers."""
    clients = [
        OpenAICompatibleClient(
            url,
            settings.llm_api_key.get_secret_value(),
            model=settings.llm_model,
            timeouts=Timeouts(connect=3, first_token=60, idle=30),
        )
        for url in settings.llm_base_urls
    ]
    try:
        infos = await asyncio.gather(*(c.model_info() for c in clients), return_exceptions=True)
        answering = sum(isinstance(info, ModelInfo) for info in infos)
        for client, info in zip(clients, infos, strict=True):
            if isinstance(info, ModelInfo):
                await _check_server(settings, client, info, report)
            elif isinstance(info, LLMError):
                flag = report.warn if answering else report.fail  # others carry the load
                flag(
                    f"model server at LLM_BASE_URL={client.base_url}: {info}",
                    "start it (`parley model serve`, or vLLM with --reasoning-parser "
                    "deepseek_r1) or fix LLM_BASE_URL / LLM_MODEL",
                )
            else:
                raise info
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def _check_server(
    settings: CoreSettings, client: OpenAICompatibleClient, info: ModelInfo, report: Report
) -> None:
    """One model server: model, context length, reasoning split, token counting."""
    report.ok(f"model server at {client.base_url} serves {info.id}")
    configured = settings.llm_context_tokens
    context = configured or info.max_model_len
    if context is None:
        report.warn("the server does not report max_model_len", "set LLM_CONTEXT_TOKENS")
    else:
        report.ok(f"context length {context} tokens")
        if configured is not None and info.max_model_len and configured > info.max_model_len:
            report.warn(
                f"LLM_CONTEXT_TOKENS={configured} is above the max_model_len "
                f"{info.max_model_len} of {client.base_url}",
                "lower LLM_CONTEXT_TOKENS or leave it empty (each server's own is used); "
                "meanwhile that server refuses the first long prompt once and Parley re-fits it",
            )
        if settings.llm_max_tokens > context // 2:
            report.warn(
                f"LLM_MAX_TOKENS={settings.llm_max_tokens} is over half the context",
                f"Parley will reserve {context // 2} tokens for replies; lower LLM_MAX_TOKENS",
            )
    await _check_reasoning(client, report)
    await _check_tokens(client, report)


async def _check_reasoning(client: OpenAICompatibleClient, report: Report) -> None:
    """Whether vLLM separates reasoning (--reasoning-parser deepseek_r1)."""
    reasoning = answer = 0
    try:
        async for event in client.stream(_SAMPLE[-1:], SamplingParams(max_tokens=24)):
            if isinstance(event, ReasoningDelta):
                reasoning += 1
            elif isinstance(event, TextDelta):
                answer += 1
    except LLMError as exc:
        report.fail(f"a test completion failed: {exc}", "check the model server's log")
        return
    if client.server_splits_reasoning:
        report.ok("reasoning is split by the server (reasoning parser on)")
    elif reasoning or answer:
        report.warn(
            "reasoning is not split by the server",
            "start vLLM with --reasoning-parser deepseek_r1 (Parley splits at </think> meanwhile)",
        )


async def _check_tokens(client: OpenAICompatibleClient, report: Report) -> None:
    """Parley's local token count against the server's /tokenize."""
    counter = default_counter()
    if not isinstance(counter, QwenTokenCounter):
        report.warn("exact token counting is unavailable", "pip install dashscope tiktoken")
        return
    users = [m for m in _SAMPLE if m.role == "user"]
    answers = [m for m in _SAMPLE if m.role == "assistant"]
    local = prompt_tokens(
        sum(counter.count(m.content) for m in users),
        sum(counter.count(m.content) for m in answers),
        len(users),
        len(answers),
    )
    try:
        remote = await client.tokenize(_SAMPLE)
    except BotError as exc:
        report.warn(f"cannot compare token counts ({exc})", "the server lacks /tokenize")
        return
    if remote == local:
        report.ok(f"token counting matches the server ({local} tokens for a sample prompt)")
    else:
        report.warn(
            f"token counts differ: Parley {local}, server {remote}",
            "the served model's tokenizer or chat template is not DeepSeek-R1-Distill-Qwen's",
        )


def _check_personas(settings: CoreSettings, report: Report) -> None:
    """PERSONAS_FILE readable and valid, or the built-in persona when the default file is absent."""
    try:
        personas = load_personas(settings.personas_file, settings.default_persona)
    except ConfigError as exc:
        report.fail(str(exc), "fix the file (the line is named) or PERSONAS_FILE/DEFAULT_PERSONA")
        return
    if not Path(settings.personas_file).is_file():
        report.warn(
            f"no {settings.personas_file} here: every chat uses LLM_INSTRUCTIONS alone",
            "copy the example personas.yaml beside Parley or set PERSONAS_FILE",
        )
        return
    report.ok(
        f"{len(personas)} personas in {settings.personas_file} (default: {personas.default_id})"
    )


async def run(settings: CoreSettings, out: TextIO = sys.stdout) -> int:
    """Run every check; exit status 1 if any failed."""
    report = Report(out)
    await _check_redis(settings, report)
    _check_personas(settings, report)
    await _check_model(settings, report)
    out.write("all good\n" if not report.failed else f"{report.failed} problem(s) found\n")
    return 1 if report.failed else 0
