"""The parallel_data rule: an entry's languages, each taken from the first of its sources that covers it (decided for every language before any download), cleaned, sampled to max_pairs with dev_pairs held out, and written as one Parquet table with a JSON record of where each language came from."""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from langadapt.core.atomic import atomic_files
from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, parse_lang
from langadapt.data.parallel import PARALLEL_SCHEMA
from langadapt.data.parallel_sources import PARALLEL_SOURCES, SPLITS, ParallelSource
from langadapt.data.sources import normalise_ws

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
    src = [normalise_ws(t or "") for t in table.column("src").to_pylist()]
    tgt = [normalise_ws(t or "") for t in table.column("tgt").to_pylist()]
    keep = pa.array([bool(s and t) for s, t in zip(src, tgt, strict=True)])
    out = table.set_column(1, "src", pa.array(src, pa.string())).set_column(
        2, "tgt", pa.array(tgt, pa.string())
    )
    return out.filter(keep)


def _sample(table: pa.Table, lang: Lang, seed: int, max_pairs: int | None, dev_pairs: int) -> pa.Table:
    """Hold out ``dev_pairs`` train pairs as dev when the source has no dev split, then cap train at
    ``max_pairs`` (a deterministic sample by seed and language, original order kept)."""
    rng = np.random.default_rng([seed, zlib.crc32(lang.code.encode())])
    split = np.asarray(table.column("split").to_pylist(), dtype=object)
    train = np.flatnonzero(split == "train")
    if dev_pairs and not np.any(split == "dev") and len(train) > dev_pairs:
        held = np.sort(rng.choice(train, dev_pairs, replace=False))
        split[held] = "dev"
        table = table.set_column(0, "split", pa.array(split.tolist(), pa.string()))
        train = np.setdiff1d(train, held)
    keep = np.flatnonzero(split != "train")
    if max_pairs is not None and len(train) > max_pairs:
        train = np.sort(rng.choice(train, max_pairs, replace=False))
    order = sorted(np.concatenate([train, keep]).tolist(), key=lambda i: (SPLITS.index(split[i]), i))
    return table.take(pa.array(order, pa.int64()))


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

    Every language is covered before anything is fetched; no output remains on error."""
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
        parts = [pa.Table.from_pylist([], schema=PARALLEL_SCHEMA)]
        for lang in sorted(langs):
            source = chosen[lang]
            raw = source.load(lang)
            pairs = _sample(_clean(raw), lang, seed, max_pairs, dev_pairs)
            if not any(s == "train" for s in pairs.column("split").to_pylist()):
                raise DataError(
                    f"parallel_data.{name}: {source.describe()} has no non-empty train pair for {lang.code}"
                )
            n = pairs.num_rows
            parts.append(pa.Table.from_arrays(
                [pa.array([lang.code] * n, pa.string()), pa.array(np.arange(n), pa.int64()),
                 pa.array(np.zeros(n, np.int16), pa.int16()), pairs.column("split").combine_chunks(),
                 pairs.column("src").combine_chunks(), pairs.column("tgt").combine_chunks()], schema=PARALLEL_SCHEMA))  # fmt: skip
            counts = {s: int(c) for s, c in zip(*np.unique(pairs.column("split").to_pylist(), return_counts=True),
                                                strict=True)}  # fmt: skip
            report["languages"][lang.code] = {**source.record(lang), "raw_pairs": raw.num_rows,
                                              "pairs": {s: counts.get(s, 0) for s in SPLITS}}  # fmt: skip
            log.info(
                "%s: %s pairs from %s", lang.code, report["languages"][lang.code]["pairs"], source.describe()
            )
        pq.write_table(pa.concat_tables(parts), tmp_parquet)
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
