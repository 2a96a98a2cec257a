"""Evaluation suites: FIM, repository-level, CodeRAG-style, low-resource languages, acceptance."""
