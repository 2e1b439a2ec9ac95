"""Building blocks of the streaming corpus stage: whitespace normalisation on Arrow arrays, 64-bit text
hashes, a compact set of 64-bit keys, re-batching and a Parquet row-group writer.

Memory is bounded by the batch size, except for :class:`HashSet64`, which holds 8 bytes per distinct key
(16 with a payload): the dedup set of a 5M-line language is 40 MB, where a Python ``set`` of the lines
takes ~1.3 KB per line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Every character Python's str.split() splits on (str.isspace), as one regex class for RE2.
WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())
_OTHER_WS = "".join(f"\\x{{{ord(c):x}}}" for c in WHITESPACE if c != " ")
# A line is in normal form (" ".join(t.split()) == t) unless it starts or ends with a space, has two
# spaces in a row, or holds any other whitespace character.
_NOT_NORMAL = f"^ | $|  |[{_OTHER_WS}]"


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic): a fixed, platform-independent hash and a
    bijection of uint64 (distinct inputs never collide)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return x ^ (x >> np.uint64(31))


def normalise_array(texts: pa.Array) -> pa.Array:
    """``" ".join(t.split())`` for every string (nulls become ""): exactly Python's whitespace collapsing.

    A vectorised check finds the lines that are not already in normal form; only those go through Python.
    """
    texts = pc.fill_null(texts.cast(pa.string()), "")
    bad = pc.match_substring_regex(texts, _NOT_NORMAL).to_numpy(zero_copy_only=False)
    if not bad.any():
        return texts
    idx = np.flatnonzero(bad)
    fixed = [" ".join(t.split()) for t in texts.take(pa.array(idx)).to_pylist()]
    out = texts.to_pylist() if len(idx) > len(texts) // 4 else None
    if out is not None:
        for i, t in zip(idx.tolist(), fixed, strict=True):
            out[i] = t
        return pa.array(out, pa.string())
    # few lines to fix: splice them in without materialising the whole batch as Python strings
    order = np.argsort(np.concatenate([np.flatnonzero(~bad), idx]), kind="stable")
    merged = pa.concat_arrays([texts.filter(pa.array(~bad)), pa.array(fixed, pa.string())])
    return merged.take(pa.array(order))


def text_hashes(texts: pa.Array | list[str]) -> np.ndarray:
    """A 64-bit hash (pandas' SipHash-2-4 with a fixed key) of every string, platform-independent."""
    values = (
        texts.to_numpy(zero_copy_only=False) if isinstance(texts, pa.Array) else np.asarray(texts, object)
    )
    if len(values) == 0:
        return np.zeros(0, np.uint64)
    return pd.util.hash_array(values, categorize=False).astype(np.uint64, copy=False)


class HashSet64:
    """A set of uint64 keys as a few sorted runs (merged when a run is no longer small next to the one
    before it, so there are O(log n) runs); with ``payload=True`` an int64 value per key (e.g. the line a
    key came from), 16 bytes per key instead of 8.
    """

    def __init__(self, payload: bool = False) -> None:
        self.runs: list[np.ndarray] = []
        self.payloads: list[np.ndarray] | None = [] if payload else None

    def __len__(self) -> int:
        return sum(len(r) for r in self.runs)

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.runs) + sum(p.nbytes for p in self.payloads or [])

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(present mask, payload of present keys, -1 elsewhere or without payloads) for `keys` (uint64)."""
        keys = np.asarray(keys, np.uint64)
        present = np.zeros(len(keys), bool)
        payload = np.full(len(keys), -1, np.int64)
        for i, run in enumerate(self.runs):
            pos = np.minimum(np.searchsorted(run, keys), len(run) - 1)
            hit = run[pos] == keys
            present |= hit
            if self.payloads is not None:
                payload[hit] = self.payloads[i][pos[hit]]
        return present, payload

    def add(self, keys: np.ndarray, payload: np.ndarray | None = None) -> np.ndarray:
        """Insert `keys`; return a mask, True where a key is new (its first occurrence within `keys` too)."""
        keys = np.asarray(keys, np.uint64)
        uniq, first = np.unique(keys, return_index=True)
        present, _ = self.find(uniq)
        new_first = first[~present]
        mask = np.zeros(len(keys), bool)
        mask[new_first] = True
        if self.payloads is not None:
            values = np.zeros(len(keys), np.int64) if payload is None else np.asarray(payload, np.int64)
            self.payloads.append(values[new_first])
        self.runs.append(uniq[~present])
        self._merge()
        return mask

    def _merge(self) -> None:
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            b, a = self.runs.pop(), self.runs.pop()
            keys = np.concatenate([a, b])
            del a, b
            if self.payloads is None:
                keys.sort()
                self.runs.append(keys)
                continue
            pb, pa_ = self.payloads.pop(), self.payloads.pop()
            order = np.argsort(keys, kind="stable")
            self.runs.append(keys[order])
            self.payloads.append(np.concatenate([pa_, pb])[order])


def rebatch(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into tables of `rows` rows (the last may be shorter); empty ones dropped."""
    pending: list[pa.Table] = []
    n = 0
    for t in tables:
        if not t.num_rows:
            continue
        pending.append(t)
        n += t.num_rows
        while n >= rows:
            whole = pa.concat_tables(pending).combine_chunks()
            yield whole.slice(0, rows)
            rest = whole.slice(rows)
            pending, n = ([rest] if rest.num_rows else []), rest.num_rows
    if n:
        yield pa.concat_tables(pending).combine_chunks()


class RowGroupWriter:
    """Write tables to one Parquet file as they come, one row group per `rows` rows (small tables are
    buffered, so a filter that keeps few lines per batch does not produce thousands of tiny row groups)."""

    def __init__(self, path: Path, schema: pa.Schema, rows: int = 1 << 17) -> None:
        self.writer = pq.ParquetWriter(str(path), schema)
        self.schema, self.rows = schema, rows
        self.pending: list[pa.Table] = []
        self.buffered = 0
        self.written = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self.pending.append(table.cast(self.schema))
            self.buffered += table.num_rows
        if self.buffered >= self.rows:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.writer.write_table(
                pa.concat_tables(self.pending), row_group_size=max(self.rows, self.buffered)
            )
            self.written += self.buffered
        self.pending, self.buffered = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()


def iter_parquet(
    path: Path, columns: list[str] | None = None, rows: int = 1 << 16, filter_split: str | None = None
) -> Iterator[pa.Table]:
    """Tables of `rows` rows read from a Parquet file (optionally only rows whose ``split`` equals
    `filter_split`), never the whole file at once."""
    cols = None if columns is None else list(dict.fromkeys([*columns, *(["split"] if filter_split else [])]))
    for batch in pq.ParquetFile(str(path)).iter_batches(batch_size=rows, columns=cols):
        t = pa.Table.from_batches([batch])
        if filter_split is not None:
            t = t.filter(pc.equal(t["split"], filter_split))
            if columns is not None and "split" not in columns:
                t = t.drop_columns(["split"])
        yield t
