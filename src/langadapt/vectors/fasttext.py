"""fastText skipgram vectors trained on corpus text (FOCUS's auxiliary embeddings, HyperOFA's word vectors
when none are given), in a fresh interpreter, and their loading (binary model or text ``.vec``)."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.atomic import publish
from langadapt.core.errors import DataError

log = logging.getLogger(__name__)

_FASTTEXT_BUCKET = 20000  # hashed character n-gram rows; small to keep the model file small

# fastText >= 0.9.3 allocates its input matrix without zeroing it (intgemm::AlignedVector) and, with
# one thread, randomly initializes only the first tenth of it (`DenseMatrix::uniform`): the rest is
# whatever the allocator returns. Fresh mmap'd pages are zero (the 0.9.2 behaviour), reused heap memory
# is garbage: results then vary from call to call and training may stop with "Encountered NaN.".
# Training therefore runs in a fresh interpreter whose large allocations are always mmap'd.
_FASTTEXT_SCRIPT = """
import json, sys
import fasttext
a = json.loads(sys.argv[1])
model = fasttext.train_unsupervised(a["input"], **a["kwargs"])
model.save_model(a["output"])
print(len(model.words))
"""


def train_fasttext(
    texts: list[str],
    out_path: Path,
    dim: int = 100,
    epochs: int = 5,
    min_count: int = 2,
    seed: int = 0,
    threads: int = 1,
    **options: Any,
) -> dict[str, int]:
    """Train fastText skipgram word vectors on `texts` and save the binary model to `out_path` (atomic).

    With ``threads=1`` the result is reproducible (fastText seeds its generators with fixed values; see
    the note above `_FASTTEXT_SCRIPT`); `seed` shuffles the order of the lines. Words are whitespace
    tokens (no segmentation for scripts written without spaces). ``bucket`` is 20,000 hashed character
    n-gram rows to keep the model small. `options` are further ``fasttext.train_unsupervised`` arguments
    that override these (e.g. ``model="cbow", neg=10, bucket=2_000_000``).
    Returns ``{"words": vocabulary size, "dim": dim}``.
    """
    lines = [t.strip() for t in texts if t.strip()]
    if not lines:
        raise DataError(f"no text to train word vectors for {out_path}")
    random.Random(seed).shuffle(lines)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f".{out_path.name}.tmp-") as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        kwargs = dict(
            model="skipgram", dim=dim, epoch=epochs, minCount=min_count, bucket=_FASTTEXT_BUCKET,
            thread=threads, verbose=0,
        ) | options  # fmt: skip
        job = {"input": str(corpus), "output": str(Path(tmp) / "vectors.bin"), "kwargs": kwargs}
        proc = subprocess.run(
            [sys.executable, "-c", _FASTTEXT_SCRIPT, json.dumps(job)],
            env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
            raise DataError(f"fastText training for {out_path} failed ({len(lines)} lines): {reason}")
        publish(Path(tmp) / "vectors.bin", out_path)
    return {"words": int(proc.stdout.split()[-1]), "dim": dim}


def load_fasttext(path: Path) -> tuple[list[str], np.ndarray]:
    """Words and vectors ``[n, d]`` from a fastText ``.bin`` model or a word2vec text file (``.vec``/``.txt``).

    The text format is ``word v1 ... vd`` per line, optionally after a ``n d`` header line.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        raise DataError(f"word-vector file {path} is missing or empty")
    if path.suffix in (".vec", ".txt"):
        words, rows = [], []
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.rstrip("\n").split(" ")
                if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue
                if not line.strip():
                    continue
                try:
                    rows.append([float(v) for v in parts[1:]])
                except ValueError:
                    raise DataError(f"{path}:{lineno}: malformed word-vector line") from None
                if rows and len(rows[-1]) != len(rows[0]):
                    raise DataError(f"{path}:{lineno}: {len(rows[-1])} values, expected {len(rows[0])}")
                words.append(parts[0])
        vecs = np.asarray(rows, dtype=np.float32)
    else:
        import fasttext

        try:
            model = fasttext.load_model(str(path))
        except ValueError as e:
            raise DataError(f"cannot read fastText model {path}: {e}") from None
        words = list(model.words)
        vecs = np.stack([model.get_word_vector(w) for w in words]) if words else np.zeros((0, 0), np.float32)
    if not words:
        raise DataError(f"word-vector file {path} contains no words")
    return words, vecs
