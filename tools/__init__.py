"""Developer tools: installing vLLM and building the tiny test model."""
