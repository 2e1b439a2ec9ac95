"""Typological distances between pool languages (realignment paper App. A.1): angular distance
d(u, v) = arccos(cos(u, v)) / pi between URIEL+ featural vectors (``urielplus``, offline database in the
wheel), or between vectors / distances given as arrays or ``.npz`` files."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.errors import ConfigError
from langadapt.realign.pool import ENGLISH

log = logging.getLogger(__name__)



def angular_distances(vectors: np.ndarray) -> np.ndarray:
    """Pairwise d(u, v) = arccos(u.v / |u||v|) / pi (Appendix A.1)."""
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ConfigError("a feature vector is all zeros: its angular distance is undefined")
    u = v / norms
    cos = np.clip(u @ u.T, -1.0, 1.0)
    d = np.arccos(cos) / math.pi
    np.fill_diagonal(d, 0.0)
    return d


def urielplus_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("urielplus")
    except Exception:
        return None


@lru_cache(maxsize=8)
def _urielplus_matrix(codes: tuple[str, ...], kind: str) -> np.ndarray:
    try:
        from urielplus import urielplus
    except ImportError:
        raise ConfigError(
            "uriel_diversity needs URIEL+ (`pip install urielplus==1.3.2 -c constraints.txt`) "
            "or explicit features=/distances="
        ) from None
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # URIEL+ logs every call at INFO
    try:
        u = _uriel_instance(urielplus)
        try:
            d = np.asarray(u.new_distance(kind, list(codes)), dtype=np.float64)
        except Exception as e:
            missing = [c for c in codes if not _uriel_has(u, c)]
            raise ConfigError(f"URIEL+ has no {kind} vector for {missing or list(codes)}: {e}") from None
    finally:
        logging.disable(previous)
    return d


@lru_cache(maxsize=1)
def _uriel_instance(module: Any) -> Any:
    return module.URIELPlus()


def _uriel_has(u: Any, code: str) -> bool:
    try:
        u.new_distance("featural", code, ENGLISH)
        return True
    except Exception:
        return False


def _load_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def distance_matrix(
    codes: Sequence[str],
    features: Mapping[str, Sequence[float]] | str | Path | None = None,
    distances: str | Path | Mapping[tuple[str, str], float] | None = None,
    kind: str = "featural",
    fill_missing: bool = True,
) -> tuple[np.ndarray, str]:
    """(distance matrix over ``codes``, description of the source).

    URIEL+ returns -1 for a pair with no shared features (25 pairs of L65 + eng in urielplus 1.3.2);
    with ``fill_missing`` (default) those get the mean of the computable distances, else a ConfigError.
    """
    codes = list(codes)
    if distances is not None:
        if isinstance(distances, Mapping):
            d = np.zeros((len(codes), len(codes)))
            for i, a in enumerate(codes):
                for j, b in enumerate(codes):
                    if i != j:
                        key = (a, b) if (a, b) in distances else (b, a)
                        if key not in distances:
                            raise ConfigError(f"distances: no entry for the pair {a}-{b}")
                        d[i, j] = distances[key]
            return d, "given distances"
        z = _load_npz(distances)
        have = [str(c) for c in z["codes"]]
        missing = [c for c in codes if c not in have]
        if missing:
            raise ConfigError(f"{distances}: no distances for {missing}")
        idx = [have.index(c) for c in codes]
        return np.asarray(z["distances"], dtype=np.float64)[np.ix_(idx, idx)], f"distances from {distances}"
    if features is not None:
        if isinstance(features, (str, Path)):
            z = _load_npz(features)
            table = {str(c): z["features"][k] for k, c in enumerate(z["codes"])}
            source = f"angular distance of features from {features}"
        else:
            table, source = dict(features), "angular distance of given features"
        missing = [c for c in codes if c not in table]
        if missing:
            raise ConfigError(f"features: no vector for {missing}")
        return angular_distances(np.stack([np.asarray(table[c], dtype=np.float64) for c in codes])), source
    d = _urielplus_matrix(tuple(codes), kind).copy()
    source = f"urielplus {urielplus_version()} new_distance({kind!r})"
    missing = d < 0  # URIEL+ marks pairs with no shared features with -1
    if missing.any():
        if not fill_missing:
            bad = sorted({f"{codes[i]}-{codes[j]}" for i, j in zip(*np.where(missing), strict=True) if i < j})
            raise ConfigError(f"URIEL+ cannot compute {kind} distances for {bad} (no shared features)")
        d[missing] = float(d[(~missing) & ~np.eye(len(codes), dtype=bool)].mean())
        source += f"; {int(missing.sum()) // 2} pairs without shared features set to the mean distance"
    return d, source
