"""Parley's adapters (terminal, Telegram, Slack) and its composition root."""
