"""Retrieval of repository context: lexical (BM25, Jaccard), symbol definitions, RepoFusion
proposals, optional dense embeddings, fused by reciprocal rank (:mod:`.retriever`)."""
