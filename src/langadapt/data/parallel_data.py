"""The parallel_data rule: an entry's languages, each taken from the first of its sources that covers it (decided for every language before any download), cleaned, sampled to max_pairs with dev_pairs held out, and written as one Parquet table with a JSON record of where each language came from."""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from langadapt.core.atomic import atomic_files
from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, parse_lang
from langadapt.data.parallel import PARALLEL_SCHEMA
from langadapt.data.parallel_sources import PAIRS_SCHEMA, PARALLEL_SOURCES, SPLITS, ParallelSource
from langadapt.data.stream import RowGroupWriter, normalise_array

ENTRY_KEYS = {"sources": None, "languages": None, "max_pairs": None, "seed": 0, "dev_pairs": 0}

log = logging.getLogger(__name__)


def check_entry(
    name: str, spec: dict[str, Any], pivot: str, config_langs: list[str], where: str = "parallel_data"
) -> tuple[list[ParallelSource], list[Lang]]:
    """Validate one ``parallel_data`` entry without I/O: (source objects, target languages)."""
    at = f"{where}.{name}"
    if unknown := sorted(set(spec) - set(ENTRY_KEYS)):
        raise ConfigError(f"{at}: unknown key(s) {unknown}; known: {sorted(ENTRY_KEYS)}")
    piv = parse_lang(pivot, where=f"{at} pivot")
    cfgs = spec.get("sources")
    if not isinstance(cfgs, list) or not cfgs:
        raise ConfigError(f"{at}.sources: a non-empty list of {{kind: ...}} blocks is required")
    sources = []
    for i, cfg in enumerate(cfgs):
        if not isinstance(cfg, dict) or "kind" not in cfg:
            raise ConfigError(f"{at}.sources[{i}]: must be a mapping with a 'kind' key, got {cfg!r}")
        try:
            sources.append(PARALLEL_SOURCES.get(cfg["kind"])(cfg, piv))
        except ConfigError as e:
            raise ConfigError(f"{at}.sources[{i}]: {e}") from None
    codes = spec.get("languages") or [c for c in config_langs if c != piv.code]
    langs = []
    for i, code in enumerate(codes):
        lang = parse_lang(code, where=f"{at}.languages[{i}]")
        if code not in config_langs:
            raise ConfigError(f"{at}.languages: {code!r} is not in languages")
        if lang == piv:
            raise ConfigError(f"{at}.languages: {code!r} is the pivot language")
        langs.append(lang)
    for key in ("max_pairs", "seed", "dev_pairs"):
        check_int(spec.get(key, ENTRY_KEYS[key]), f"{at}.{key}", low=0, optional=True)
    return sources, langs


def choose_sources(name: str, sources: list[ParallelSource], langs: list[Lang]) -> dict[Lang, ParallelSource]:
    """For every language the first source covering it; DataError naming the uncovered ones (no download)."""
    chosen: dict[Lang, ParallelSource] = {}
    for source in sources:
        todo = [lang for lang in langs if lang not in chosen]
        if not todo:
            break
        for lang in source.covers(todo):
            chosen[lang] = source
    if missing := [lang.code for lang in langs if lang not in chosen]:
        tried = ", ".join(s.describe() for s in sources)
        raise DataError(f"parallel_data.{name}: no source covers {', '.join(missing)} (tried: {tried})")
    return chosen


def _clean(table: pa.Table) -> pa.Table:
    """Whitespace-normalised pairs (Python's ``" ".join(t.split())``, vectorised) with both sides non-empty."""
    src, tgt = normalise_array(table.column("src").combine_chunks()), normalise_array(table.column("tgt").combine_chunks())
    keep = pc.and_(pc.not_equal(pc.utf8_length(src), 0), pc.not_equal(pc.utf8_length(tgt), 0))
    return table.set_column(1, "src", src).set_column(2, "tgt", tgt).filter(keep)


class _Plan:
    """Which pairs of one language survive, decided from the counts of a first pass over its cleaned pairs:
    ``dev_pairs`` train pairs held out as dev when the source has no dev split, then train capped at
    ``max_pairs`` (a deterministic sample by seed and language). Indices count train pairs in source order,
    the same draws as sampling the whole table at once."""

    def __init__(self, counts: dict[str, int], lang: Lang, seed: int, max_pairs: int | None, dev_pairs: int) -> None:
        rng = np.random.default_rng([seed, zlib.crc32(lang.code.encode())])
        n = counts.get("train", 0)
        train = np.arange(n)
        self.held = np.zeros(0, np.int64)
        if dev_pairs and not counts.get("dev") and n > dev_pairs:
            self.held = np.sort(rng.choice(train, dev_pairs, replace=False))
            train = np.setdiff1d(train, self.held)
        if max_pairs is not None and len(train) > max_pairs:
            train = np.sort(rng.choice(train, max_pairs, replace=False))
        self.train = train

    def assign(self, splits: np.ndarray, first_train: int) -> np.ndarray:
        """The output split of each row of a batch (``""``: dropped), `first_train` = train pairs before it."""
        out = splits.astype(object).copy()
        is_train = splits == "train"
        idx = first_train + np.cumsum(is_train) - 1
        out[is_train & ~_member(idx, self.train)] = ""
        out[is_train & _member(idx, self.held)] = "dev"
        return out


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """`values` in the sorted array `sorted_set` (binary search: no sort of the set per batch, as np.isin does)."""
    pos = np.minimum(np.searchsorted(sorted_set, values), max(len(sorted_set) - 1, 0))
    return (sorted_set[pos] == values) if len(sorted_set) else np.zeros(len(values), bool)


def _language_pairs(name: str, source: ParallelSource, lang: Lang, seed: int, max_pairs: int | None, dev_pairs: int,
                    writer: RowGroupWriter) -> dict[str, int]:
    """Stream one language's pairs twice (count, then select), writing its rows train -> dev -> test with
    ``verse_id`` = pair index; held-out and source dev/test rows (a few thousand) wait in memory."""
    counts = {"raw": 0, **dict.fromkeys(SPLITS, 0)}
    for raw in source.batches(lang):
        counts["raw"] += raw.num_rows
        for split, n in zip(*np.unique(_clean(raw).column("split").to_numpy(zero_copy_only=False), return_counts=True),
                            strict=True):  # fmt: skip
            counts[str(split)] += int(n)
    plan = _Plan(counts, lang, seed, max_pairs, dev_pairs)
    held: dict[str, list[pa.Table]] = {"dev": [], "test": []}
    n_train = out_train = 0
    for raw in source.batches(lang):
        pairs = _clean(raw)
        splits = pairs.column("split").to_numpy(zero_copy_only=False)
        new = plan.assign(splits, n_train)
        n_train += int((splits == "train").sum())
        pairs = pairs.set_column(0, "split", pa.array(new.tolist(), pa.string()))
        train = pairs.filter(pc.equal(pairs.column("split"), "train"))
        writer.write(_output(train, lang, out_train))
        out_train += train.num_rows
        for split in held:
            held[split].append(pairs.filter(pc.equal(pairs.column("split"), split)))
    if not out_train:
        raise DataError(f"parallel_data.{name}: {source.describe()} has no non-empty train pair for {lang.code}")
    n = out_train
    for split in ("dev", "test"):
        rest = pa.concat_tables([pa.Table.from_pylist([], schema=PAIRS_SCHEMA), *held[split]])
        writer.write(_output(rest, lang, n))
        n += rest.num_rows
    kept = {"train": out_train, **{s: sum(t.num_rows for t in held[s]) for s in held}}
    return {"raw_pairs": counts["raw"], **{f"pairs_{s}": kept[s] for s in SPLITS}}


def _output(pairs: pa.Table, lang: Lang, first: int) -> pa.Table:
    n = pairs.num_rows
    return pa.Table.from_arrays(
        [pa.array([lang.code] * n, pa.string()), pa.array(np.arange(first, first + n), pa.int64()),
         pa.array(np.zeros(n, np.int16), pa.int16()), pairs.column("split").combine_chunks(),
         pairs.column("src").combine_chunks(), pairs.column("tgt").combine_chunks()], schema=PARALLEL_SCHEMA)  # fmt: skip


def build_parallel_data(
    spec: dict[str, Any],
    pivot: str,
    config_langs: list[str],
    out_parquet: str | Path,
    out_json: str | Path | None = None,
    name: str = "parallel_data",
) -> dict[str, Any]:
    """Write ``out_parquet`` (:data:`PARALLEL_SCHEMA`: one row per pair, languages in sorted order, train
    then dev then test, ``verse_id`` = pair index within the language, ``book`` 0) and the sidecar
    ``out_json`` (default: same stem, ``.json``) with each language's source, repo, revision and counts.

    Every language is covered before anything is fetched; each language's pairs are streamed (two passes:
    count, then sample), so memory does not grow with a source's size; no output remains on error."""
    sources, langs = check_entry(name, spec, pivot, config_langs)
    chosen = choose_sources(name, sources, langs)
    out_parquet = Path(out_parquet)
    out_json = Path(out_json) if out_json else out_parquet.with_suffix(".json")
    seed, max_pairs, dev_pairs = (
        int(spec.get("seed") or 0),
        spec.get("max_pairs"),
        int(spec.get("dev_pairs") or 0),
    )
    report: dict[str, Any] = {"name": name, "pivot": pivot, "languages": {}}
    with atomic_files(out_parquet, out_json, clear_on_error=True) as (tmp_parquet, tmp_json):
        writer = RowGroupWriter(tmp_parquet, PARALLEL_SCHEMA)
        try:
            for lang in sorted(langs):
                source = chosen[lang]
                got = _language_pairs(name, source, lang, seed, max_pairs, dev_pairs, writer)
                report["languages"][lang.code] = {**source.record(lang), "raw_pairs": got["raw_pairs"],
                                                  "pairs": {s: got[f"pairs_{s}"] for s in SPLITS}}  # fmt: skip
                log.info("%s: %s pairs from %s", lang.code, report["languages"][lang.code]["pairs"], source.describe())
        finally:
            writer.close()
        tmp_json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report


def check_parallel_config(config: dict[str, Any], source: str = "config") -> None:
    """Config checks before any job: every ``parallel_data`` entry, and realignment ``data:`` references."""
    entries = config.get("parallel_data") or {}
    for name, spec in entries.items():
        check_entry(name, spec, config["pivot"], config["languages"], where=f"{source}: parallel_data")
    for name, spec in (config.get("realignment") or {}).items():
        data = spec.get("data")
        if data is not None and data != "bible" and data not in entries:
            raise ConfigError(
                f"{source}: realignment.{name}.data: {data!r} is not defined in parallel_data "
                f"(defined: {sorted(entries)}; 'bible' = the verse pairs of the corpora)"
            )


def local_inputs(spec: dict[str, Any], pivot: str, config_langs: list[str]) -> list[str]:
    """The existing local files an entry may read (rule inputs, so that editing them reruns the entry)."""
    piv = parse_lang(pivot)
    codes = spec.get("languages") or [c for c in config_langs if c != piv.code]
    out: list[str] = []
    for cfg in spec.get("sources") or []:
        source = PARALLEL_SOURCES.get(cfg["kind"])(cfg, piv)
        if source.remotes():
            continue  # hub files: the entry's download job fetches them
        for lang in map(parse_lang, codes):
            out.extend(str(p) for p in source.local_files(lang) if p.is_file())
    return sorted(set(out))
