"""External word vectors for OFA and HyperOFA: the on-disk format and the registry of kinds (`base`), the
kinds themselves (`kinds`: ColexNet+ files, Bible-aligned PPMI-SVD vectors built from the corpora), fastText
training on corpus text (`fasttext`) and the matching of tokenizer pieces to words (`matching`).

Importing this package registers every kind (torch-free: the workflow reads kinds while it builds the DAG)."""

from langadapt.vectors import kinds  # noqa: F401  (registers the word-vector kinds)
