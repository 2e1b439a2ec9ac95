"""Per-language caps on the training lines of a corpus, as the papers subsample high-resource languages.

- HyperOFA App. B, Table 7: the six high-resource languages of its Glot500-c subset are subsampled to
  5,000,000 sentences each (the others are used whole): ``max_lines: 5000000``.
- Vocabulary specialization App. A: "each language's training data is capped at approximately 2GB":
  ``max_bytes: 2000000000`` (UTF-8 bytes of the training lines' text).

(LangSAMP's 5% ablation subsample, §5.1, is a property of a pretraining run, not of the corpus: the main
and the ablation models read the same corpora; it is ``pretraining.<run>.data_fraction``.)

The cap applies to the *train* split (dev/test stay whole, so evaluation is unchanged). It is
deterministic: each training line gets the key ``splitmix64(verse_id ^ splitmix64(seed + 1))``; the lines
with the smallest keys are kept, as many as fit both limits. The key depends only on (seed, verse_id), so
a parallel corpus (the Bible) keeps the same verses in every language, and the selection does not depend on
the order or batching of the input. The filter stats get a ``cap`` row (input, removed, the limits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError
from langadapt.data.stream import RowGroupWriter, iter_parquet, splitmix64

CAP_DEFAULTS: dict[str, Any] = {"max_lines": None, "max_bytes": None, "seed": 0}


@dataclass(frozen=True)
class CapSettings:
    max_lines: int | None = None
    max_bytes: int | None = None
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | None) -> CapSettings:
        """Validate ``data.cap`` (keys :data:`CAP_DEFAULTS`); ConfigError names the key and value."""
        cfg = dict(cfg or {})
        if unknown := sorted(set(cfg) - set(CAP_DEFAULTS)):
            raise ConfigError(f"unknown data.cap key(s) {unknown}; known: {sorted(CAP_DEFAULTS)}")
        cfg = {**CAP_DEFAULTS, **cfg}
        for key in ("max_lines", "max_bytes"):
            if cfg[key] is not None:
                check_int(cfg[key], f"data.cap.{key}", low=1)
        check_int(cfg["seed"], "data.cap.seed", low=0)
        return cls(cfg["max_lines"], cfg["max_bytes"], cfg["seed"])

    @property
    def active(self) -> bool:
        return self.max_lines is not None or self.max_bytes is not None

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in (("max_lines", self.max_lines), ("max_bytes", self.max_bytes)) if v]
        return " ".join([*parts, f"seed={self.seed}"])

    def keys(self, verse_ids: np.ndarray) -> np.ndarray:
        """The selection key of each verse id (smaller = kept first)."""
        salt = splitmix64(np.array([self.seed + 1], np.uint64))[0]
        return splitmix64(np.asarray(verse_ids).astype(np.int64).view(np.uint64) ^ salt)


class CapSelector:
    """Collects (key, UTF-8 bytes) of the training lines during the first pass; :meth:`write_capped`
    copies the first-pass Parquet file keeping held-out lines and the training lines under the threshold."""

    def __init__(self, cap: CapSettings) -> None:
        self.cap = cap
        self.keys: list[np.ndarray] = []
        self.sizes: list[np.ndarray] = []

    def observe(self, table: pa.Table) -> None:
        if not self.cap.active:
            return
        train = table.filter(pc.equal(table.column("split"), "train"))
        self.keys.append(self.cap.keys(train.column("verse_id").to_numpy()))
        if self.cap.max_bytes is not None:
            self.sizes.append(pc.binary_length(train.column("text")).to_numpy().astype(np.int64))

    def threshold(self) -> tuple[int, int, np.uint64 | None]:
        """(train lines, lines kept, largest key kept; None keeps nothing)."""
        keys = np.concatenate(self.keys) if self.keys else np.zeros(0, np.uint64)
        self.keys = [keys]
        n = len(keys)
        k = min(n, self.cap.max_lines or n)
        if self.cap.max_bytes is not None and n:
            order = np.argsort(keys)
            sizes = np.concatenate(self.sizes)[order]
            k = min(k, int(np.searchsorted(np.cumsum(sizes), self.cap.max_bytes, side="right")))
            return n, k, (keys[order[k - 1]] if k else None)
        if k == n:
            return n, k, (keys.max() if n else None)
        return n, k, (np.partition(keys, k - 1)[k - 1] if k else None)

    def write_capped(self, first: Path, out: Path, schema: pa.Schema, code: str, rows: int) -> dict[str, Any]:
        """Second pass; returns the ``cap`` row of the filter stats (`rows`: lines written by the first)."""
        n, k, top = self.threshold()
        writer = RowGroupWriter(out, schema)
        try:
            for t in iter_parquet(first):
                train = pc.equal(t.column("split"), "train").to_numpy(zero_copy_only=False)
                keep = ~train
                if top is not None:
                    keep |= train & (self.cap.keys(t.column("verse_id").to_numpy()) <= top)
                writer.write(t.filter(pa.array(keep)))
        finally:
            writer.close()
        note = f"{self.cap.describe()}; train lines {n:,} -> {k:,}"
        return {
            "lang": code,
            "filter": "cap",
            "input": rows,
            "removed": n - k,
            "kept": rows - (n - k),
            "note": note,
        }
