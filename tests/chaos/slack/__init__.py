"""Chaos through the Slack adapter."""
