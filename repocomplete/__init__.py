"""repocomplete: a self-hosted, offline-first, repository-aware code-completion engine.

The shared kernel: request/response types, FIM templates, token-budgeted prompt
assembly, post-processing, backends and the completion engine. Front-ends
(``server``, ``lsp``, ``training``, ``evals``) build on it; it builds on ``indexer``.
"""

__version__ = "0.1.0"
