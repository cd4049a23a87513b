"""Pytest fixtures that run FakeVLLM on a free port and always stop it, even when a test fails.

Use them from a conftest.py with ``pytest_plugins = ["tests.fakes.fixtures"]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import pytest_asyncio

from tests.fakes.fake_vllm import DEFAULT_MODEL, FakeVLLM, ReasoningField, Responder


class FakeVLLMFactory(Protocol):
    """Starts a configured FakeVLLM; the fixture stops all of them at teardown."""

    async def __call__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        max_model_len: int = 4096,
        first_token_delay: float = 0.0,
        token_interval: float = 0.0,
        reasoning_field: ReasoningField = "reasoning",
        responder: Responder | None = None,
    ) -> FakeVLLM: ...


@pytest_asyncio.fixture
async def fake_vllm() -> AsyncIterator[FakeVLLM]:
    """A running FakeVLLM with default settings (R1-Distill-Qwen-1.5B, 4096 tokens, no delays)."""
    fake = FakeVLLM()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest_asyncio.fixture
async def fake_vllm_factory() -> AsyncIterator[FakeVLLMFactory]:
    """Start FakeVLLMs with custom settings inside a test; each is stopped at teardown."""
    started: list[FakeVLLM] = []

    async def factory(
        *,
        model: str = DEFAULT_MODEL,
        max_model_len: int = 4096,
        first_token_delay: float = 0.0,
        token_interval: float = 0.0,
        reasoning_field: ReasoningField = "reasoning",
        responder: Responder | None = None,
    ) -> FakeVLLM:
        """Start one more fake and remember it for teardown."""
        fake = FakeVLLM(
            model=model,
            max_model_len=max_model_len,
            first_token_delay=first_token_delay,
            token_interval=token_interval,
            reasoning_field=reasoning_field,
            responder=responder,
        )
        await fake.start()
        started.append(fake)
        return fake

    try:
        yield factory
    finally:
        for fake in started:
            await fake.stop()
