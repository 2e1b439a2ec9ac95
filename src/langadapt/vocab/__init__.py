"""Vocabulary specialization and extension: the embedding init chain (`chain`), its methods (`methods/`,
registered in `base.INIT_METHODS`), the torch-free recipe facts the workflow reads while it builds the DAG
(`spec`), and PCA diagnostics of the initialized embeddings (`diagnostics`).

This ``__init__`` imports nothing, so that ``langadapt.vocab.spec`` stays free of torch."""
