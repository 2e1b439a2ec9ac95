"""Typological distances between pool languages (realignment paper App. A.1): angular distance
d(u, v) = arccos(cos(u, v)) / pi between URIEL+ featural vectors (``urielplus``, offline database in the
wheel), or between vectors / distances given as arrays or ``.npz`` files."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from langadapt.core.errors import ConfigError
from langadapt.realign.uriel import UrielSettings, prepare_distances

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


@lru_cache(maxsize=8)
def _uriel_matrix(codes: tuple[str, ...], settings: UrielSettings) -> tuple[np.ndarray, str]:
    d, record = prepare_distances(settings, codes)
    source = f"urielplus {record['urielplus']} {settings.kind} distances, {settings.record()}"
    if record["pairs_without_shared_features"]:
        source += f"; {record['pairs_without_shared_features']} pairs without shared features set to the mean"
    return d, source


def _load_npz(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def distance_matrix(
    codes: Sequence[str],
    features: Mapping[str, Sequence[float]] | str | Path | None = None,
    distances: str | Path | Mapping[tuple[str, str], float] | None = None,
    kind: str = "featural",
    fill_missing: bool = True,
    uriel: UrielSettings | None = None,
) -> tuple[np.ndarray, str]:
    """(distance matrix over ``codes``, description of the source): given ``distances`` (a mapping or an
    ``.npz``, e.g. the workflow's prepared ``uriel_distances.npz``), angular distances of given ``features``,
    or else URIEL+ prepared per ``uriel`` (a :class:`~langadapt.realign.uriel.UrielSettings`; default: the
    config defaults) with ``kind``. A pair without shared features (URIEL+ returns -1; 25 pairs of L65 + eng
    in the released urielplus 1.3.2 database) gets the mean distance with ``fill_missing``, else a DataError.
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
    settings = replace(uriel or UrielSettings(), kind=kind, missing="mean" if fill_missing else "error")
    d, source = _uriel_matrix(tuple(codes), settings)
    return d.copy(), source
