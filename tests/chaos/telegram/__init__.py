"""Chaos through the Telegram adapter."""
