"""Docker sandbox for running model-written code (the code verifier builds on it)."""

__all__: list[str] = []
