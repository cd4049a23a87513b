"""Test doubles that imitate Parley's external services closely enough to test against."""
