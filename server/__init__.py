"""HTTP completion server (FastAPI): Tabby- and OpenAI-compatible routes over the engine."""
