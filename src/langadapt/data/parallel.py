"""Verse-aligned translation pairs: the pivot language (English) joined with every other corpus.

Output (``results/data/parallel.parquet``): ``lang, verse_id, book, split, src_text (pivot), tgt_text``,
rows ordered by language then verse id. Used by realignment (contrastive pairs) and sentence retrieval.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from langadapt.core.atomic import atomic_files
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang
from langadapt.data.corpus import load_corpus, read_checked_parquet

log = logging.getLogger(__name__)

PARALLEL_SCHEMA = pa.schema([
    ("lang", pa.string()), ("verse_id", pa.int64()), ("book", pa.int16()), ("split", pa.string()),
    ("src_text", pa.string()), ("tgt_text", pa.string()),
])  # fmt: skip


def _pairs(lang: str, pivot: pa.Table, other: pa.Table, other_path: Path) -> pa.Table:
    """Inner join of two corpora on verse_id (both have unique ids)."""
    pid = pivot.column("verse_id").to_numpy()
    oid = other.column("verse_id").to_numpy()
    common, pi, oi = np.intersect1d(pid, oid, assume_unique=True, return_indices=True)
    p, o = pivot.take(pi), other.take(oi)
    diff = np.flatnonzero(p.column("split").to_numpy(zero_copy_only=False)
                          != o.column("split").to_numpy(zero_copy_only=False))  # fmt: skip
    if diff.size:
        raise DataError(
            f"{other_path}: verse {int(common[diff[0]])} is in a different split than in the pivot corpus "
            "(corpora built with different split settings)"
        )
    pb, ob = p.column("book").to_numpy(), o.column("book").to_numpy()
    return pa.Table.from_arrays(
        [pa.array(np.full(len(common), lang, dtype=object), pa.string()), pa.array(common, pa.int64()),
         pa.array(np.where(pb != 0, pb, ob), pa.int16()), p.column("split"), p.column("text"), o.column("text")],
        schema=PARALLEL_SCHEMA,
    )  # fmt: skip


def build_parallel(corpus_paths: dict[str, Path], pivot: str, out: Path) -> None:
    """Write pivot-vs-language pairs for every language in ``corpus_paths`` other than ``pivot``.

    Pairs are the inner join on ``verse_id``; the split is the verse's (identical in both corpora by
    construction, checked). Raises ConfigError if the pivot has no corpus, DataError if no pair exists.
    """
    codes = {parse_lang(code, where="build_parallel").code: Path(p) for code, p in corpus_paths.items()}
    pivot = parse_lang(pivot, where="build_parallel pivot").code
    if pivot not in codes:
        raise ConfigError(f"pivot language {pivot} has no corpus (given: {sorted(codes)})")
    with atomic_files(Path(out), clear_on_error=True) as (tmp,):
        src = load_corpus(codes[pivot])
        parts = [pa.Table.from_pylist([], schema=PARALLEL_SCHEMA)]
        for code in sorted(codes):
            if code == pivot:
                continue
            pairs = _pairs(code, src, load_corpus(codes[code]), codes[code])
            if pairs.num_rows == 0:
                log.warning("no verse of %s is shared with pivot %s", code, pivot)
            parts.append(pairs)
        table = pa.concat_tables(parts)
        if table.num_rows == 0:
            raise DataError(f"no parallel pairs: no verse ids shared between {pivot} and {sorted(set(codes) - {pivot})}")
        pq.write_table(table, tmp)
    log.info("wrote %d pairs (%d languages) to %s", table.num_rows, len(codes) - 1, out)


def load_parallel(path: str | Path, langs: list[str] | None = None, split: str | None = None) -> pa.Table:
    """Read the pairs file, optionally only some target languages and/or one split."""
    table = read_checked_parquet(path, PARALLEL_SCHEMA, "parallel", split)
    if langs is not None:
        wanted = [parse_lang(code, where="load_parallel").code for code in langs]
        table = table.filter(pc.is_in(table.column("lang"), value_set=pa.array(wanted, pa.string())))
    if split is not None:
        table = table.filter(pc.equal(table.column("split"), split))
    return table
