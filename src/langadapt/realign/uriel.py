"""URIEL+ settings behind the URIEL selectors (realignment paper §3.1 and App. A.1; URIEL+: Khan et al. 2025)
and the prepared distance matrix a workflow computes once (``results/selection/uriel_distances.npz``).

The paper takes "URIEL featural vectors" from URIEL+ and does not state how the knowledge base was prepared.
URIEL+ offers, in this order: integration of further databases (``integrate_databases``: SAPHON, BDPROTO,
Grambank, APICS, eWAVE, then Glottolog, which switches URIEL+ to Glottocodes, and inferred features),
aggregation over sources (union ``U`` or average ``A``, optionally filling from the parent language) and
imputation of the missing values (``mean``, ``softimpute``; ``knn`` fails in urielplus 1.3.2). The config's
``uriel:`` section chooses each; ``benchmarks/realign_uriel_settings.py`` measures how well each combination reproduces the
paper's Table 6 and the defaults follow that measurement (benchmarks/README.md)::

    s = uriel_settings({"databases": "all", "imputation": "softimpute"}, where="config.yaml: uriel")
    d, record = prepare_distances(s, ["afr", "amh", ..., "eng"])

Macrolanguage codes of the L65 pool have no Glottocode; with Glottolog integrated they are looked up through
the individual language that `langadapt.realign.pool.POOL_ALIASES` maps onto them (zho <- cmn, ara <- arb, ...).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.atomic import atomic_file
from langadapt.core.errors import ConfigError, DataError
from langadapt.realign.pool import ENGLISH, POOL_ALIASES, load_pool

log = logging.getLogger(__name__)

DATABASES = ("UPDATED_SAPHON", "BDPROTO", "GRAMBANK", "APICS", "EWAVE", "GLOTTOLOG", "INFERRED")
KINDS = ("featural", "syntactic", "phonological", "inventory", "morphological", "genetic", "geographic", "script")
# URIEL+'s k-NN imputation is left out: in urielplus 1.3.2 its k search fails in joblib workers (its lazily
# imported KNNImputer is None there) and, run in threads, with KeyError 'Q2 (...)' after ~6 min
IMPUTATIONS = ("none", "mean", "softimpute")
MISSING = ("mean", "error")
# the URIEL+ file a distance kind reads (idx into URIELPlus.files) when it can be imputed
_IMPUTED_FILE = {**{k: "features.npz" for k in KINDS[:5]}, "script": "script_features.npz"}


@dataclass(frozen=True)
class UrielSettings:
    """One preparation of URIEL+ (see the module docstring); the defaults are the config's defaults."""

    kind: str = "featural"  # realignment paper App. A.1: "the URIEL featural vector of language l"
    databases: tuple[str, ...] = DATABASES  # integrated databases (() = the released URIEL+ only)
    aggregation: str = "U"  # URIEL+ BaseURIEL.aggregation default: union over sources
    # URIEL+'s default is true (aggregation fills a language's gaps from its Glottolog parent); off agrees
    # better with Table 6 (0.862 vs 0.821 mean overlap, benchmarks/realign_uriel_settings.py)
    fill_with_base_lang: bool = False
    imputation: str = "softimpute"
    missing: str = "mean"  # pairs left without shared features: the mean distance, or an error

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "databases": list(self.databases)}


def uriel_settings(spec: Mapping[str, Any] | None, where: str = "uriel") -> UrielSettings:
    """Checked :class:`UrielSettings` from a config mapping (unknown keys and values raise a ConfigError
    naming ``where``). ``databases``: ``all``, ``none`` or a list of :data:`DATABASES`."""
    spec = dict(spec or {})
    known = set(UrielSettings.__dataclass_fields__)
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
    dbs = spec.get("databases", list(UrielSettings.databases))
    if dbs == "all":
        dbs = DATABASES
    elif dbs in ("none", None):
        dbs = ()
    elif isinstance(dbs, str) or not all(isinstance(d, str) for d in dbs):
        raise ConfigError(f"{where}.databases: all, none or a list of {', '.join(DATABASES)}; got {dbs!r}")
    bad = [d for d in dbs if d.upper() not in DATABASES]
    if bad:
        raise ConfigError(f"{where}.databases: unknown {bad}; known: {', '.join(DATABASES)}")
    s = UrielSettings(**{**spec, "databases": tuple(sorted({d.upper() for d in dbs}, key=DATABASES.index))})
    for key, allowed in (("kind", KINDS), ("aggregation", ("U", "A")), ("imputation", IMPUTATIONS),
                         ("missing", MISSING)):
        if getattr(s, key) not in allowed:
            raise ConfigError(f"{where}.{key}: one of {', '.join(allowed)}, not {getattr(s, key)!r}")
    if not isinstance(s.fill_with_base_lang, bool):
        raise ConfigError(f"{where}.fill_with_base_lang: true or false, not {s.fill_with_base_lang!r}")
    if s.imputation != "none" and s.kind not in _IMPUTED_FILE:
        raise ConfigError(f"{where}: {s.kind} vectors are not imputed by URIEL+; set imputation: none")
    return s


def urielplus_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("urielplus")
    except Exception:
        return None


def _load_urielplus() -> Any:
    try:
        from urielplus import urielplus
    except ImportError:
        raise ConfigError("URIEL+ selectors need `pip install urielplus[imputation]==1.3.2 -c constraints.txt` "
                          "(or explicit features=/distances=)") from None
    return urielplus


def _prepared(s: UrielSettings) -> Any:
    """A URIELPlus instance prepared per ``s`` (integration, aggregation, imputation), in memory only:
    URIEL+ caching stays off and imputation writes its scratch files to a temporary folder."""
    u = _load_urielplus().URIELPlus()
    u.set_aggregation(s.aggregation)
    u.set_fill_with_base_lang(s.fill_with_base_lang)
    if s.databases:
        t0 = time.perf_counter()
        u.integrate_custom_databases(list(s.databases))
        log.info("URIEL+: integrated %s in %.0f s", ", ".join(s.databases), time.perf_counter() - t0)
    if s.imputation != "none":
        t0 = time.perf_counter()
        _impute(u, s)
        log.info("URIEL+: %s imputation in %.0f s", s.imputation, time.perf_counter() - t0)
    return u


def _impute(u: Any, s: UrielSettings) -> None:
    file = _IMPUTED_FILE[s.kind]
    prefixes = ("SC_",) if file == "script_features.npz" else ("S_", "P_", "INV_", "M_")
    # fancyimpute prints one line per SoftImpute iteration to stdout: keep the rule log readable
    with tempfile.TemporaryDirectory(prefix="urielplus-") as tmp, contextlib.redirect_stdout(io.StringIO()):
        u.imputation_interface(
            strategy=s.imputation, file=file, feature_prefixes=prefixes, file_path_to_save_npz=tmp,
            eval_metric="f1" if s.aggregation == "U" else "rmse", test_quality=False, return_csv=False,
            save_as_npz=True,
        )
    # pandas 3 (copy-on-write) hands URIEL+ a read-only array as the imputed data; its distance code writes
    # into the data afterwards ("assignment destination is read-only" once Glottolog is integrated)
    u.data = [a if a.flags.writeable else a.copy() for a in u.data]
    if hasattr(u, "_sync_loaded_features"):
        u._sync_loaded_features()


def uriel_codes(u: Any, codes: Sequence[str]) -> list[str]:
    """``codes`` as the prepared URIEL+ names them (ISO 639-3, or Glottocodes once Glottolog is integrated)."""
    if u.get_codes() == "Iso":
        return list(codes)
    import pandas as pd

    table = Path(u.cur_dir) / "database" / "urielplus_csvs" / "uriel_glottocode_map.csv"
    m = pd.read_csv(table, dtype=str, keep_default_na=False)
    glotto = dict(zip(m["iso_code"].str.strip(), m["glottocode"].str.strip(), strict=True))
    out, missing = [], []
    for c in codes:
        # a pool macrolanguage (zho, ara, msa, fas, aze, est) has no Glottocode: take the individual language
        # the pool's alias table maps onto it (POOL_ALIASES: cmn -> zho, arb -> ara, ...)
        candidates = [c, *(alias for alias, pool in POOL_ALIASES.items() if pool == c)]
        g = next((glotto[x] for x in candidates if glotto.get(x)), "")
        (out if g else missing).append(g or c)
    if missing:
        raise DataError(f"{table}: no Glottocode for {missing}")
    return out


def prepare_distances(s: UrielSettings, codes: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """(angular distance matrix over ``codes`` from URIEL+ prepared per ``s``, a JSON-able record).

    Pairs without shared features (URIEL+ returns -1) get the mean distance (``missing: mean``) or raise."""
    t0 = time.perf_counter()
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # URIEL+ logs every call at INFO
    try:
        u = _prepared(s)
        names = uriel_codes(u, codes)
        try:
            d = np.asarray(u.new_distance(s.kind, names), dtype=np.float64)
        except ValueError as e:
            raise DataError(f"URIEL+ {s.kind} distances for {list(codes)}: {e}") from None
    finally:
        logging.disable(previous)
    missing = d < 0
    n_missing = int(missing.sum()) // 2
    if n_missing:
        if s.missing == "error":
            bad = sorted({f"{codes[i]}-{codes[j]}" for i, j in zip(*np.where(missing), strict=True) if i < j})
            raise DataError(f"URIEL+ cannot compute {s.kind} distances for {bad} (no shared features)")
        d[missing] = float(d[(~missing) & ~np.eye(len(codes), dtype=bool)].mean())
    record = {"settings": s.record(), "urielplus": urielplus_version(), "codes_in_uriel": names,
              "pairs_without_shared_features": n_missing, "wall_s": round(time.perf_counter() - t0, 1)}
    return d, record


def write_distances(path: Path, codes: Sequence[str], d: np.ndarray, record: Mapping[str, Any]) -> None:
    """The ``.npz`` the selectors read with ``distances=`` (arrays ``codes``, ``distances``, ``record``)."""
    if d.shape != (len(codes), len(codes)) or not np.all(np.isfinite(d)):
        raise DataError(f"{path}: distances must be a finite {len(codes)}x{len(codes)} matrix, got {d.shape}")
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, codes=np.asarray(list(codes)), distances=d, record=np.asarray(json.dumps(record)))


def read_record(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        if "record" not in z.files:
            raise DataError(f"{path}: no URIEL+ record (not written by write_distances)")
        return json.loads(str(z["record"]))


def distances_job(spec: Mapping[str, Any] | None, out: Path, where: str = "uriel") -> dict[str, Any]:
    """The ``uriel_distances`` rule: URIEL+ prepared per the config's ``uriel:`` section, distances over the
    L65 pool and English written to ``out`` (read by every URIEL selector and the Table 6 comparison)."""
    s = uriel_settings(spec, where=where)
    codes = [*load_pool().codes, ENGLISH]
    log.info("URIEL+ %s distances over %d languages, settings %s", s.kind, len(codes), s.record())
    d, record = prepare_distances(s, codes)
    write_distances(out, codes, d, record)
    log.info("wrote %s in %.0f s (%d pairs without shared features)", out, record["wall_s"],
             record["pairs_without_shared_features"])
    return record
