"""Per-language corpora: load a source, filter, split by verse id, write Parquet + filter stats.

Corpus file (``results/data/corpora/{lang}.parquet``): ``verse_id:int64, book:int16, text:string,
split:string``. Splits are a pure function of ``(seed, verse_id)``, so a verse falls in the same split in
every language and test verses never leak into training in any language.
"""

from __future__ import annotations

import csv
import errno
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from langadapt.core.atomic import atomic_files
from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang
from langadapt.core.progress import Every
from langadapt.data.caps import CapSelector, CapSettings
from langadapt.data.filters import FilterChain
from langadapt.data.lid import with_lid
from langadapt.data.sources import stream_source
from langadapt.data.stream import RowGroupWriter, iter_parquet, normalise_array, splitmix64

log = logging.getLogger(__name__)

CORPUS_SCHEMA = pa.schema(
    [("verse_id", pa.int64()), ("book", pa.int16()), ("text", pa.string()), ("split", pa.string())]
)
SPLITS = ("train", "dev", "test")
STATS_COLUMNS = ["lang", "filter", "input", "removed", "kept", "note"]
# No paper fixes a split of the Bible corpora: 5% dev, 5% test verses (~1,555 each of 31,102).
# train_fraction < 1 keeps only that share of the remaining (train) verses, the same verses in every
# language: a speed option for small test worlds; dev/test are unaffected.
SPLIT_DEFAULTS: dict[str, Any] = {"dev_fraction": 0.05, "test_fraction": 0.05, "train_fraction": 1.0, "seed": 0}

# Memory of the streaming data jobs (benchmarks/corpus_stream.py; see benchmarks/README.md): a flat working
# set (imports, one batch, the Parquet writer, the LID helper process: ~0.4 GB measured at 1M and 5M lines)
# plus per source line the dedup set (8 B), the verse-id set of sources with their own ids (16 B) and a cap's
# keys and sizes (12 B), about twice that while a sorted run is merged (parallel data: the sample's index
# arrays, ~24 B per pair). Lines are bounded from the input bytes at MIN_BYTES_PER_LINE, a deliberately low
# average line length (Glot500-c averages ~125 B per sentence); gzip files count GZIP_RATIO times their size.
BASE_MEMORY_MB = 800
BYTES_PER_LINE_STATE = 72
MIN_BYTES_PER_LINE = 40
GZIP_RATIO = 4


def stream_memory_mb(inputs: Sequence[str | os.PathLike] = ()) -> int:
    """A bound on a streaming data job's peak memory in MB from the bytes of its inputs: download markers
    (``results/remote/downloads/*.json``, their ``fetched[].bytes``) and local data files."""
    import json

    size = 0
    for item in inputs:
        path = Path(item)
        if path.suffix == ".json" and "downloads" in path.parts:
            if not path.is_file():  # not downloaded yet: Snakemake shows <TBD> and asks again when it is
                raise FileNotFoundError(errno.ENOENT, "download marker not there yet", str(item))
            size += sum(int(f.get("bytes") or 0) for f in json.loads(path.read_text(encoding="utf-8"))["fetched"])
        elif path.is_file():
            size += path.stat().st_size * (GZIP_RATIO if path.suffix == ".gz" else 1)
    return BASE_MEMORY_MB + -(-size // MIN_BYTES_PER_LINE * BYTES_PER_LINE_STATE // 1_000_000)


def corpus_threads(source_cfg: dict[str, Any]) -> int:
    """Threads of a corpus job: 2 (fastText LID in a helper process, `with_lid`) for sources that can be
    large; 1 for the Bibles shipped in packages, where starting the helper costs more than it saves."""
    from langadapt.data.sources import build_source

    return 1 if build_source(source_cfg).SMALL else 2


def corpus_memory_mb(lang: str, source_cfg: dict[str, Any], markers: Sequence[str | os.PathLike] = ()) -> int:
    """:func:`stream_memory_mb` of a corpus job: its download markers and, for a ``local`` source, its file
    (the sources shipped in packages hold ~31k Bible verses: the base alone)."""
    from langadapt.data.sources import LocalSource, build_source

    source = build_source(source_cfg)
    files = source.local_files(parse_lang(lang)) if isinstance(source, LocalSource) else []
    return stream_memory_mb([*markers, *files])


def split_config(split_cfg: dict[str, Any] | None) -> dict[str, Any]:
    """Validate ``{dev_fraction, test_fraction, seed}`` (defaults :data:`SPLIT_DEFAULTS`)."""
    cfg = dict(split_cfg or {})
    if unknown := sorted(set(cfg) - set(SPLIT_DEFAULTS)):
        raise ConfigError(f"unknown split key(s) {unknown}; known: {sorted(SPLIT_DEFAULTS)}")
    cfg = {**SPLIT_DEFAULTS, **cfg}
    for key in ("dev_fraction", "test_fraction", "train_fraction"):
        v = cfg[key]
        ok = 0 < v <= 1 if key == "train_fraction" else 0 <= v < 1
        if isinstance(v, bool) or not isinstance(v, int | float) or not ok:
            raise ConfigError(f"split {key} must be a number in {'(0, 1]' if key == 'train_fraction' else '[0, 1)'}, got {v!r}")
    if cfg["dev_fraction"] + cfg["test_fraction"] >= 1:
        raise ConfigError("split dev_fraction + test_fraction must be < 1 (no training data left)")
    check_int(cfg["seed"], "split seed", low=0)
    return cfg


def assign_splits(verse_ids: np.ndarray, dev_fraction: float, test_fraction: float, seed: int,
                  train_fraction: float = 1.0) -> np.ndarray:
    """Split name (``train``/``dev``/``test``/``unused``) per verse id, a function of (seed, verse_id).

    Each id is hashed with SplitMix64 (seeded) to a uniform number u in [0, 1): ``test`` if
    u < test_fraction, ``dev`` if u < test_fraction + dev_fraction, ``train`` if u falls in the next
    ``train_fraction`` share of the rest, else ``unused``.
    """
    split_config({"dev_fraction": dev_fraction, "test_fraction": test_fraction, "seed": seed,
                  "train_fraction": train_fraction})
    ids = np.asarray(verse_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ConfigError(f"verse ids must be a 1-D integer array, got {ids.dtype} shape {ids.shape}")
    key = splitmix64(np.array([seed], dtype=np.uint64))[0]
    h = splitmix64(ids.astype(np.int64).view(np.uint64) ^ key)
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    out = np.full(ids.shape, "train", dtype=object)
    held = test_fraction + dev_fraction
    out[u >= held + train_fraction * (1 - held)] = "unused"
    out[u < held] = "dev"
    out[u < test_fraction] = "test"
    return out


def _write_stats(stats: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=STATS_COLUMNS, lineterminator="\n")
        w.writeheader()
        for row in stats:
            w.writerow({k: row.get(k, "") for k in STATS_COLUMNS})


def build_corpus(
    lang: str,
    source_cfg: dict[str, Any],
    filters_cfg: dict[str, Any] | None,
    split_cfg: dict[str, Any] | None,
    out_parquet: Path,
    out_stats: Path,
    cap_cfg: dict[str, Any] | None = None,
    workers: int = 1,
) -> None:
    """Stream one language's source through the filters and the split, writing Parquet row groups as
    they come, then the filter stats CSV; with a cap (:mod:`langadapt.data.caps`) a second pass over the
    written rows keeps the capped training lines.

    Memory stays flat in the corpus size (batches of :data:`~langadapt.data.readers.BATCH_ROWS` lines),
    except for the dedup and verse-id sets (8-16 bytes per line) and, with a cap, 12 bytes per training
    line. With ``workers > 1`` fastText LID runs in a helper process (:func:`with_lid`) on the lines that
    passed the filters before it, while this process filters the next batches; the output is the same.
    Progress goes to the log every :data:`PROGRESS_LINES` lines. Config errors are raised before any data is
    read; on any error neither output file remains.
    """
    code = parse_lang(lang, where="build_corpus").code
    split = split_config(split_cfg)
    cap = CapSettings.from_config(cap_cfg)
    chain = FilterChain(code, filters_cfg)  # validates names and params before loading anything
    counts = dict.fromkeys((*SPLITS, "unused"), 0)
    meta = {"langadapt.lang": code}
    schema = CORPUS_SCHEMA.with_metadata(meta)
    with atomic_files(Path(out_parquet), Path(out_stats), clear_on_error=True) as (tmp_parquet, tmp_stats):
        first = tmp_parquet.with_name(tmp_parquet.name + ".uncapped") if cap.active else tmp_parquet
        selector = CapSelector(cap)
        try:
            _stream_filtered(code, source_cfg, chain, split, RowGroupWriter(first, schema), selector, counts,
                             workers)  # fmt: skip
            stats = chain.stats()
            if stats[-1]["kept"] == 0:
                raise DataError(f"empty corpus: every line of {code} was removed by the filters ({stats})")
            if split["train_fraction"] < 1:
                n = stats[-1]["kept"]
                stats.append({"lang": code, "filter": "train_fraction", "input": n, "removed": counts["unused"],
                              "kept": n - counts["unused"], "note": f"train_fraction={split['train_fraction']}"})
            if cap.active:
                stats.append(selector.write_capped(first, tmp_parquet, schema, code, stats[-1]["kept"]))
                counts["train"] -= stats[-1]["removed"]
        finally:
            if first != tmp_parquet:
                first.unlink(missing_ok=True)
        _write_stats(stats, tmp_stats)
    counts.pop("unused")
    log.info("%s: wrote %d lines (%s) to %s", code, sum(counts.values()), counts, out_parquet)


def _stream_filtered(code: str, source_cfg: dict[str, Any], chain: FilterChain, split: dict[str, Any],
                     writer: RowGroupWriter, selector: CapSelector, counts: dict[str, int], workers: int) -> None:
    """The first pass of `build_corpus`: source -> filters -> split -> Parquet row groups (+ cap keys)."""
    progress = _Progress(code)
    try:
        k = chain.lid_index  # filters before fastText run here; LID of the survivors in a helper
        cheap = (chain(batch, normal=True, stop=k) for batch in stream_source(source_cfg, code))
        for table, lid in with_lid(cheap, workers if k < len(chain.filters) else 1):
            table = chain(table, normal=True, start=k, lid=lid)
            splits = assign_splits(table.column("verse_id").to_numpy(), split["dev_fraction"],
                                   split["test_fraction"], split["seed"], split["train_fraction"])  # fmt: skip
            for name in counts:
                counts[name] += int(np.sum(splits == name))
            used = splits != "unused"
            table = table.append_column("split", pa.array(splits, pa.string())).filter(pa.array(used))
            selector.observe(table)
            writer.write(table)
            progress.update(chain.source, sum(counts.values()) - counts["unused"])
    finally:
        writer.close()


PROGRESS_LINES = 1_000_000


class _Progress:
    """A log line every PROGRESS_LINES source lines or every 60 s: lines read and kept, lines/s, elapsed."""

    def __init__(self, code: str) -> None:
        self.code, self.t0, self.next = code, time.perf_counter(), PROGRESS_LINES
        self.every = Every(60.0)

    def update(self, read: int, kept: int) -> None:
        if read >= self.next or (read and self.every.due()):
            elapsed = time.perf_counter() - self.t0
            log.info("%s: %s lines read, %s kept (%.1f%%), %.0f lines/s, %.0f s", self.code, f"{read:,}",
                     f"{kept:,}", 100 * kept / read, read / elapsed, elapsed)  # fmt: skip
            self.next = (read // PROGRESS_LINES + 1) * PROGRESS_LINES


def read_checked_parquet(path: str | Path, schema: pa.Schema, what: str, split: str | None = None) -> pa.Table:
    """Read a Parquet file of the given schema (extra columns dropped); DataError names the file."""
    path = Path(path)
    if split is not None and split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; known: {list(SPLITS)}")
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a Parquet {what} ({e})") from None
    if missing := [c for c in schema.names if c not in table.column_names]:
        raise DataError(f"{path}: not a {what}, missing column(s) {missing} (has {table.column_names})")
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise DataError(f"{path}: {what} columns have wrong types ({e})") from None


def load_corpus(path: str | Path, split: str | None = None) -> pa.Table:
    """Read a corpus Parquet file (optionally one split); DataError if missing or not a corpus."""
    table = read_checked_parquet(path, CORPUS_SCHEMA, "corpus", split)
    if split is not None:
        table = table.filter(pc.equal(table.column("split"), split))
    return table


def _read_stats(path: Path) -> list[dict[str, str]]:
    if not Path(path).is_file():
        raise DataError(f"filter stats file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or any(c not in rows[0] for c in STATS_COLUMNS[:5]) or rows[0]["filter"] != "source":
        raise DataError(f"{path}: not a filter stats CSV (columns {STATS_COLUMNS[:5]}, first row 'source')")
    return rows


def _latex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        s = s.replace(a, b)
    return s


def filter_report(stats_paths: list[Path], out_csv: Path, out_tex: Path) -> None:
    """Aggregate per-language filter stats into one wide table (CSV + LaTeX booktabs).

    Rows: languages (input order); columns: ``lang, source`` (lines from the source), ``removed_<filter>``
    per filter (in first-seen order; empty where a language did not run it), ``kept``, ``kept_pct``.
    """
    table: list[dict[str, Any]] = []
    filters: list[str] = []
    for path in stats_paths:
        rows = _read_stats(Path(path))
        try:
            rec: dict[str, Any] = {"lang": rows[0]["lang"], "source": int(rows[0]["kept"])}
            for r in rows[1:]:
                if r["filter"] not in filters:
                    filters.append(r["filter"])
                rec[f"removed_{r['filter']}"] = int(r["removed"])
            rec["kept"] = int(rows[-1]["kept"])
        except ValueError as e:
            raise DataError(f"{path}: bad number in filter stats ({e})") from None
        rec["kept_pct"] = round(100 * rec["kept"] / rec["source"], 2) if rec["source"] else 0.0
        table.append(rec)
    columns = ["lang", "source", *(f"removed_{f}" for f in filters), "kept", "kept_pct"]
    header = ["Language", "Source", *(_latex_escape(f) for f in filters), "Kept", r"\% kept"]
    tex = [r"\begin{tabular}{l" + "r" * (len(columns) - 1) + "}", r"\toprule",
           " & ".join(header) + r" \\", r"\midrule"]  # fmt: skip
    for rec in table:
        cells = [_latex_escape(rec["lang"])]
        cells += [f"{rec[c]:,}" if c in rec else "--" for c in columns[1:-1]]
        tex.append(" & ".join([*cells, f"{rec['kept_pct']:.1f}"]) + r" \\")
    tex += [r"\bottomrule", r"\end{tabular}", ""]
    with atomic_files(Path(out_csv), Path(out_tex), clear_on_error=True) as (tmp_csv, tmp_tex):
        with open(tmp_csv, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            w.writeheader()
            w.writerows(table)
        tmp_tex.write_text("\n".join(tex), encoding="utf-8")


def iter_split_texts(path: str | os.PathLike, split: str = "train", rows: int = 1 << 16) -> Iterator[list[str]]:
    """Non-blank ``text`` values of the rows of `split` in a corpus parquet, in file order, a Parquet batch at
    a time (the corpus is never read whole)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"corpus file {path} does not exist")
    try:
        for table in iter_parquet(path, ["text"], rows=rows, filter_split=split):
            text = pc.fill_null(table.column("text").combine_chunks(), "")
            yield text.filter(pc.not_equal(pc.utf8_length(normalise_array(text)), 0)).to_pylist()
    except (pa.ArrowInvalid, OSError, KeyError) as e:
        raise DataError(f"cannot read columns text, split of corpus {path}: {e}") from None


def read_split_texts(path: str | os.PathLike, split: str = "train") -> list[str]:
    """Non-empty ``text`` values of the rows of `split` in a corpus parquet, in file order."""
    texts = [t for part in iter_split_texts(path, split) for t in part]
    if not texts:
        raise DataError(f"corpus {path} has no non-empty rows in split {split!r}")
    return texts


class SplitTexts:
    """The non-blank texts of one split of a corpus file as a lazy sequence: ``len`` counts them in one pass,
    iteration and :meth:`select` read the file batch by batch (for samples of corpora too large to load)."""

    def __init__(self, path: str | os.PathLike, split: str = "train") -> None:
        self.path, self.split = Path(path), split
        self._len: int | None = None

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(len(part) for part in iter_split_texts(self.path, self.split))
        return self._len

    def __iter__(self) -> Iterator[str]:
        for part in iter_split_texts(self.path, self.split):
            yield from part

    def select(self, indices: np.ndarray) -> Iterator[str]:
        """The texts at sorted `indices`, in order."""
        indices = np.asarray(indices)
        start = 0
        for part in iter_split_texts(self.path, self.split):
            first, start = start, start + len(part)
            lo, hi = np.searchsorted(indices, [first, start])
            yield from (part[i] for i in (indices[lo:hi] - first).tolist())
            if hi == len(indices):
                return


def corpus_texts(paths: Sequence[str | os.PathLike], split: str | None = None) -> Iterator[str]:
    """Texts of several corpus files (all splits by default), one language after another."""
    for path in paths:
        table = load_corpus(Path(path), split=split)
        yield from table.column("text").to_pylist()


def corpus_texts_by_lang(paths: dict[str, Path], split: str | None = "train") -> dict[str, list[str]]:
    return {lang: list(corpus_texts([p], split=split)) for lang, p in paths.items()}
