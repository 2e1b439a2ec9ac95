"""Max- / min-diversity subset search over a distance matrix (realignment paper App. A.1): exhaustive search
when the number of subsets is small, else a CBC integer program (``pulp``) warm-started by a seeded local
search; optional group constraints (one language per family / script)."""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError
from langadapt.realign.distances import distance_matrix
from langadapt.realign.pool import ENGLISH, Language, Pool

log = logging.getLogger(__name__)


EXHAUSTIVE_LIMIT = 2_000_000  # number of subsets above which exhaustive search refuses


@dataclass
class Selection:
    languages: list[str]
    record: dict[str, Any] = field(default_factory=dict)


def _objective(d: np.ndarray, w: np.ndarray, chosen: Sequence[int]) -> float:
    idx = list(chosen)
    return float(d[np.ix_(idx, idx)].sum() / 2.0 + w[idx].sum())


def _check_groups(groups: Sequence[str] | None, chosen: Iterable[int]) -> bool:
    if groups is None:
        return True
    seen = [groups[i] for i in chosen]
    return len(seen) == len(set(seen))


def solve_exhaustive(d, w, n, maximize, groups=None) -> tuple[list[int], float]:
    m = len(w)
    if math.comb(m, n) > EXHAUSTIVE_LIMIT:
        raise ConfigError(f"exhaustive search over C({m}, {n}) = {math.comb(m, n)} subsets is too large")
    best, best_val = None, None
    sign = 1.0 if maximize else -1.0
    for comb in itertools.combinations(range(m), n):
        if not _check_groups(groups, comb):
            continue
        val = _objective(d, w, comb)
        if best_val is None or sign * val > sign * best_val + 1e-12:
            best, best_val = list(comb), val
    if best is None:
        raise ConfigError("no feasible subset (group constraints)")
    return best, float(best_val)


def solve_local(d, w, n, maximize, seed=0, restarts=10, groups=None) -> tuple[list[int], float]:
    """Greedy construction + best-improvement swap local search, a few seeded restarts."""
    m = len(w)
    sign = 1.0 if maximize else -1.0
    rng = random.Random(seed)
    best, best_val = None, None
    for r in range(max(1, restarts)):
        chosen: list[int] = []
        if r > 0:
            chosen = [rng.randrange(m)]
        while len(chosen) < n:
            gain = d[:, chosen].sum(axis=1) + w if chosen else w.copy()
            order = np.argsort(-sign * gain, kind="stable")
            for i in order:
                i = int(i)
                if i not in chosen and _check_groups(groups, [*chosen, i]):
                    chosen.append(i)
                    break
            else:
                raise ConfigError("no feasible subset (group constraints)")
        val = _objective(d, w, chosen)
        improved = True
        while improved:
            improved = False
            inside = np.array(chosen)
            contrib = d[:, inside].sum(axis=1)  # sum of distances to the chosen set
            best_delta, best_swap = 1e-12, None
            outside = [j for j in range(m) if j not in set(chosen)]
            for a_pos, a in enumerate(chosen):
                for b in outside:
                    # remove a, add b
                    delta = (contrib[b] - d[b, a] + w[b]) - (contrib[a] + w[a])
                    if sign * delta > best_delta:
                        trial = chosen[:a_pos] + [b] + chosen[a_pos + 1 :]
                        if _check_groups(groups, trial):
                            best_delta, best_swap = sign * delta, (a_pos, b)
            if best_swap is not None:
                chosen[best_swap[0]] = best_swap[1]
                val = _objective(d, w, chosen)
                improved = True
        if best_val is None or sign * val > sign * best_val + 1e-12:
            best, best_val = sorted(chosen), val
    return best, float(best_val)


def solve_ilp(d, w, n, maximize, time_limit=5.0, groups=None, warm: list[int] | None = None):
    """Pair-variable MILP with PuLP/CBC: returns (indices, objective, optimal)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # PuLP 3.x warns about its 4.0 API
        return _solve_ilp(d, w, n, maximize, time_limit, groups, warm)


def _solve_ilp(d, w, n, maximize, time_limit, groups, warm):
    import pulp

    m = len(w)
    prob = pulp.LpProblem("subset", pulp.LpMaximize if maximize else pulp.LpMinimize)
    x = [pulp.LpVariable(f"x{i}", cat="Binary") for i in range(m)]
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    y = {p: pulp.LpVariable(f"y{p[0]}_{p[1]}", lowBound=0, upBound=1) for p in pairs}
    prob += pulp.lpSum(float(d[i, j]) * y[i, j] for i, j in pairs) + pulp.lpSum(float(w[i]) * x[i] for i in range(m))
    prob += pulp.lpSum(x) == n
    for i, j in pairs:
        if maximize:
            prob += y[i, j] <= x[i]
            prob += y[i, j] <= x[j]
        else:
            prob += y[i, j] >= x[i] + x[j] - 1
    # valid equality that tightens the relaxation: each chosen i pairs with n-1 others
    for i in range(m):
        prob += pulp.lpSum(y[min(i, j), max(i, j)] for j in range(m) if j != i) == (n - 1) * x[i]
    if groups is not None:
        for g in sorted(set(groups)):
            members = [i for i in range(m) if groups[i] == g]
            if len(members) > 1:
                prob += pulp.lpSum(x[i] for i in members) <= 1
    if warm is not None:
        ws = set(warm)
        for i in range(m):
            x[i].setInitialValue(1 if i in ws else 0)
        for i, j in pairs:
            y[i, j].setInitialValue(1 if (i in ws and j in ws) else 0)
    solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, warmStart=warm is not None, threads=1)
    status = prob.solve(solver)
    if pulp.LpStatus[status] != "Optimal" and prob.sol_status not in (1, 2):
        return None, None, False
    chosen = [i for i in range(m) if (x[i].value() or 0) > 0.5]
    if len(chosen) != n:
        return None, None, False
    optimal = pulp.LpStatus[status] == "Optimal" and prob.sol_status == pulp.LpSolutionOptimal
    return chosen, _objective(d, w, chosen), bool(optimal)


def diverse_subset(
    pool: Pool,
    n: int,
    seed: int = 0,
    direction: str = "max",
    method: str = "auto",
    time_limit: float = 3.0,
    anchor: str | None = ENGLISH,
    groups: Callable[[Language], str] | None = None,
    features: Any = None,
    distances: Any = None,
    kind: str = "featural",
    heuristic: str = "uriel_diversity",
    extra: Mapping[str, Any] | None = None,
) -> Selection:
    """Most (or least) URIEL-diverse subset of size ``n`` of ``pool``; ``anchor`` (English) counts in the
    objective but is never returned. ``groups`` maps a language to a key of which at most one may be chosen.

    method: ``auto`` (local search, then the MILP warm-started from it within ``time_limit``; the better
    is kept, ``optimal`` only when CBC proves it), ``ilp``, ``local``, ``exhaustive``.
    """
    t0 = time.perf_counter()
    if direction not in ("max", "min"):
        raise ConfigError(f"direction must be 'max' or 'min', not {direction!r}")
    if method not in ("auto", "ilp", "local", "exhaustive"):
        raise ConfigError(f"method must be auto, ilp, local or exhaustive, not {method!r}")
    cand = [lang for lang in pool.languages if lang.code != anchor]
    check_n(n, len(cand), heuristic)
    codes = [lang.code for lang in cand]
    all_codes = codes + ([anchor] if anchor else [])
    full, source = distance_matrix(all_codes, features=features, distances=distances, kind=kind)
    d = full[: len(codes), : len(codes)]
    w = full[len(codes), : len(codes)] if anchor else np.zeros(len(codes))
    g = [groups(lang) for lang in cand] if groups is not None else None
    if g is not None and len(set(g)) < n:
        raise ConfigError(f"{heuristic}: only {len(set(g))} distinct groups in the pool, cannot choose n={n}")
    maximize = direction == "max"
    sign = 1.0 if maximize else -1.0
    solver, optimal = method, False
    if method == "exhaustive":
        chosen, val = solve_exhaustive(d, w, n, maximize, g)
        optimal, solver = True, "exhaustive"
    else:
        chosen, val = (None, None)
        if method in ("auto", "local"):
            chosen, val = solve_local(d, w, n, maximize, seed=seed, groups=g)
            solver = "greedy+swap"
        if method in ("auto", "ilp"):
            ic, iv, iopt = solve_ilp(d, w, n, maximize, time_limit, g, warm=chosen)
            if ic is not None and (val is None or sign * iv >= sign * val - 1e-9):
                chosen, val, optimal = sorted(ic), iv, iopt
                solver = "pulp-cbc" if method == "ilp" else "greedy+swap, pulp-cbc"
            elif method == "ilp" and ic is None:
                raise ConfigError(f"{heuristic}: CBC found no solution within {time_limit}s")
    languages = [codes[i] for i in sorted(chosen)]
    record = {
        "heuristic": heuristic,
        "n": n,
        "seed": seed,
        "direction": direction,
        "method": method,
        "time_limit_s": time_limit,
        "anchor_in_objective": anchor,
        "pool_size": len(codes),
        "distance_source": source,
        "objective": round(float(val), 6),
        "optimal": bool(optimal),
        "solver": solver,
        "wall_s": round(time.perf_counter() - t0, 4),
    }
    record.update(extra or {})
    return Selection(languages, record)


def check_n(n: int, size: int, heuristic: str) -> None:
    check_int(n, f"{heuristic}: n")
    if n > size:
        raise ConfigError(f"{heuristic}: n={n} is larger than the pool ({size} languages)")
