"""External word vectors: the on-disk format every kind produces, and its reader/writer.

A word-vector directory (``results/word_vectors/{name}/``, built by the ``word_vectors`` rule) holds:

- ``vectors.npy``: float32 ``[n, d]``;
- ``words.tsv``: header ``word\tlang``, then one row per vector in the same order (``lang`` is a
  ``iso_Script`` code, or empty when the source does not say); the same surface form may appear once per
  language;
- ``meta.json``: ``{"kind": ..., "dim": d, "n": n, ...}`` (how it was built or fetched).

OFA and HyperOFA read these (multilingual, aligned vectors such as ColexNet+); see
`langadapt.init_methods`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.errors import DataError


@dataclass
class WordVectors:
    words: list[str]
    langs: list[str]
    vectors: np.ndarray  # float32 [n, d]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)


def save_word_vectors(directory: Path, words: Sequence[str], langs: Sequence[str], vectors: np.ndarray,
                      meta: dict[str, Any]) -> None:
    """Write the three files into an existing directory (use `langadapt.atomic.atomic_dir` around it)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(words) != len(vectors) or len(langs) != len(vectors):
        raise ValueError(f"{len(words)} words, {len(langs)} langs and vectors of shape {vectors.shape}")
    directory = Path(directory)
    np.save(directory / "vectors.npy", vectors)
    with open(directory / "words.tsv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
        w.writerow(["word", "lang"])
        w.writerows(zip(words, langs, strict=True))
    (directory / "meta.json").write_text(json.dumps({**meta, "dim": int(vectors.shape[1]), "n": len(words)},
                                                    indent=1) + "\n")


def load_word_vectors(directory: Path) -> WordVectors:
    """Read a word-vector directory; DataError naming the file when something is missing or inconsistent."""
    directory = Path(directory)
    for name in ("vectors.npy", "words.tsv"):
        if not (directory / name).is_file():
            raise DataError(f"word vectors {directory}: {name} is missing")
    vectors = np.load(directory / "vectors.npy")
    words, langs = [], []
    with open(directory / "words.tsv", encoding="utf-8", newline="") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        header = next(r, None)
        if header != ["word", "lang"]:
            raise DataError(f"{directory / 'words.tsv'}: line 1: expected header 'word<TAB>lang', got {header}")
        for n, row in enumerate(r, start=2):
            if len(row) != 2:
                raise DataError(f"{directory / 'words.tsv'}: line {n}: expected 2 fields, got {len(row)}")
            words.append(row[0])
            langs.append(row[1])
    if vectors.ndim != 2 or len(vectors) != len(words):
        raise DataError(f"word vectors {directory}: {len(words)} words but vectors of shape {vectors.shape}")
    if not words:
        raise DataError(f"word vectors {directory}: empty")
    return WordVectors(words, langs, vectors.astype(np.float32, copy=False))
