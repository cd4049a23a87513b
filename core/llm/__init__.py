"""Talking to the model server."""
