"""The Telegram integration suite's fixtures: fake Bot API, fake vLLM, Redis, Parley's bot."""

from tests.integration.telegram.conftest import redis, start_bot, telegram, vllm

__all__ = ["redis", "start_bot", "telegram", "vllm"]
