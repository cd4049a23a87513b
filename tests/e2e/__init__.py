"""End-to-end tests against a real vLLM (and Redis) started by the test session."""
