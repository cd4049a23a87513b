"""Parley's platform-free core: conversations, context fitting, model streaming, reply pacing."""
