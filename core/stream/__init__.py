"""Streaming a reply into editable messages."""
