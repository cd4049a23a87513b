"""The Slack integration suite's fixtures: fake Slack, Redis, Parley's bot in HTTP mode."""

from tests.integration.slack.conftest import fake_slack, redis_url, start_bot

__all__ = ["fake_slack", "redis_url", "start_bot"]
