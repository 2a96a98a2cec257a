"""Repository indexer: walk, parse (tree-sitter), store (SQLite), retrieve.

A leaf package: it imports no other project package, so serving, training and evals
all share the exact same retrieval code.
"""
