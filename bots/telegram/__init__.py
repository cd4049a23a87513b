"""The Telegram adapter: python-telegram-bot in front of Parley's core."""
