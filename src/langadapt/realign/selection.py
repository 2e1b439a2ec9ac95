"""Language-subset selectors for realignment (the realignment paper, Section 3.1 and Appendix A.1).

Every selector has the signature ``select(pool, n, seed, **params) -> Selection`` and is registered in
``SELECTORS``::

    pool = load_pool()                                   # the packaged 65-language pool L65
    sel = SELECTORS.get("uriel_diversity")(pool, 10, seed=17, direction="max")
    sel.languages   # ISO 639-3 codes, in pool order (English never returned)
    sel.record      # JSON-able: heuristic, params, objective, optimal, solver, wall_s, ...

Featural vectors: URIEL+ (``urielplus`` on PyPI; its database ships inside the wheel and works offline)
``URIELPlus().new_distance("featural", codes)``; or pass ``features=`` (dict code -> vector, or an
``.npz`` path with arrays ``codes`` and ``features``) or ``distances=`` (an ``.npz`` with ``codes`` and
``distances``) to use other vectors. Angular distance d(u, v) = arccos(cos(u, v)) / pi as in A.1.

Rules where the paper is silent are written in each selector's docstring.
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.errors import ConfigError
from langadapt.core.registry import Registry

log = logging.getLogger(__name__)

POOL_RESOURCE = "realign_l65_languages.tsv"
SEEN_RESOURCE = "seen_languages.tsv"  # languages seen in pretraining by XLM-R / mBERT (sources in its header)
SEEN_MODELS = ("xlmr", "mbert")
# Macrolanguage <-> individual-language codes mapped onto the code the L65 pool uses, so that a `seen:`
# list written with either code matches the pool (zho/cmn, ara/arb, msa/zsm, fas/pes, swh/swa, ...).
POOL_ALIASES = {
    "cmn": "zho", "arb": "ara", "zsm": "msa", "pes": "fas", "azj": "aze", "ekk": "est",
    "swa": "swh", "orm": "gaz", "aka": "twi", "fil": "tgl",
}
ENGLISH = "eng"
PAPER_SEEDS = (17, 23, 42, 66)
INDO_EUROPEAN_FAMILIES = frozenset({"Germanic", "Romance", "Balto-Slavic", "Indo-Iranian", "Hellenic"})
EXHAUSTIVE_LIMIT = 2_000_000  # number of subsets above which exhaustive search refuses

SELECTORS: Registry[Callable[..., Selection]] = Registry("language selector")


# --------------------------------------------------------------------------------------------- pool
@dataclass(frozen=True)
class Language:
    code: str
    name: str
    script: str
    family: str
    joshi_class: int
    resource_group: str

    @property
    def family_key(self) -> str:
        """Family used for "distinct family" rules; an unknown family (N/A: isolates) is its own family."""
        return self.family if self.family not in ("", "N/A") else f"isolate:{self.code}"

    @property
    def indo_european(self) -> bool:
        return self.family in INDO_EUROPEAN_FAMILIES


@dataclass(frozen=True)
class Pool:
    languages: tuple[Language, ...]

    @property
    def codes(self) -> list[str]:
        return [lang.code for lang in self.languages]

    def __len__(self) -> int:
        return len(self.languages)

    def __getitem__(self, code: str) -> Language:
        for lang in self.languages:
            if lang.code == code:
                return lang
        raise ConfigError(f"unknown language {code!r}: not in the pool ({len(self)} languages)")

    def where(self, keep: Callable[[Language], bool]) -> Pool:
        return Pool(tuple(lang for lang in self.languages if keep(lang)))

    def subset(self, codes: Iterable[str]) -> Pool:
        """The pool restricted to ``codes`` (pool order); an unknown code is a ConfigError naming it."""
        codes = list(codes)
        known = set(self.codes)
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise ConfigError(f"unknown language code(s) {', '.join(map(repr, unknown))}: not in the pool")
        wanted = set(codes)
        return self.where(lambda lang: lang.code in wanted)


def _parse_pool(text: str, origin: str) -> Pool:
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0].split("\t")
    need = ["name", "iso639_3", "script", "family", "joshi_class", "resource_group"]
    if header[: len(need)] != need:
        raise ConfigError(f"{origin}: expected columns {need}, got {header}")
    langs = []
    for k, line in enumerate(lines[1:], start=2):
        f = line.split("\t")
        try:
            langs.append(Language(f[1].strip(), f[0].strip(), f[2].strip(), f[3].strip(), int(f[4]), f[5].strip()))
        except (IndexError, ValueError) as e:
            raise ConfigError(f"{origin}:{k}: bad row {line!r}: {e}") from None
    return Pool(tuple(langs))


@lru_cache(maxsize=1)
def _packaged_pool() -> Pool:
    text = resources.files("langadapt").joinpath("resources", POOL_RESOURCE).read_text(encoding="utf-8")
    return _parse_pool(text, f"langadapt/resources/{POOL_RESOURCE}")


def load_pool(path: str | Path | None = None, codes: Iterable[str] | None = None) -> Pool:
    """The packaged L65 pool (or a TSV of the same columns), optionally restricted to ``codes``."""
    pool = _packaged_pool() if path is None else _parse_pool(Path(path).read_text(encoding="utf-8"), str(path))
    return pool if codes is None else pool.subset(codes)


# ----------------------------------------------------------------------------------------- features
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


# ----------------------------------------------------------------------------------------- solvers
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
    _check_n(n, len(cand), heuristic)
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


def _check_n(n: int, size: int, heuristic: str) -> None:
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"{heuristic}: n must be a positive integer, not {n!r}")
    if n > size:
        raise ConfigError(f"{heuristic}: n={n} is larger than the pool ({size} languages)")


# ---------------------------------------------------------------------------------------- selectors
@SELECTORS.register("uriel_diversity")
def uriel_diversity(pool: Pool, n: int, seed: int = 0, direction: str = "max", **params: Any) -> Selection:
    """A.1: max (or min) total pairwise angular distance over S u {eng}; English is not returned."""
    return diverse_subset(pool, n, seed, direction=direction, **params)


@SELECTORS.register("family_diverse")
def family_diverse(pool: Pool, n: int, seed: int = 0, **params: Any) -> Selection:
    """Each language from a distinct family other than Indo-European (Section 3.1).

    Rule (paper silent): among non-IE languages, at most one per ``family`` column value (an N/A family
    counts as its own), the most URIEL-diverse such subset. If ``n`` exceeds the number of distinct non-IE
    families, IE families are admitted too (still one language per family) and the record says so.
    """
    non_ie = pool.where(lambda lang: not lang.indo_european)
    fams = {lang.family_key for lang in non_ie.languages if lang.code != ENGLISH}
    use = non_ie if n <= len(fams) else pool
    return diverse_subset(
        use, n, seed, groups=lambda lang: lang.family_key, heuristic="family_diverse",
        extra={"indo_european_admitted": use is pool}, **params,
    )


@SELECTORS.register("single_family")
def single_family(pool: Pool, n: int, seed: int = 0, family: str = "indo-european", direction: str = "min",
                  **params: Any) -> Selection:
    """Languages of a single family (Indo-European by default), as the homogeneous contrast.

    Rule (paper silent on the choice within the family): the paper's Table 6 lists Germanic/Romance
    languages close to English (afr, nld, deu, ita, por for n = 5), so the default is the *least*
    URIEL-diverse subset within the family (``direction="min"``); pass ``direction="max"`` for the other.
    """
    if family.lower() in ("indo-european", "ie"):
        sub = pool.where(lambda lang: lang.indo_european)
    else:
        sub = pool.where(lambda lang: lang.family == family)
    return diverse_subset(sub, n, seed, direction=direction, heuristic="single_family",
                          extra={"family": family}, **params)


@SELECTORS.register("script_diverse")
def script_diverse(pool: Pool, n: int, seed: int = 0, **params: Any) -> Selection:
    """Each language from a distinct non-Latin script (Section 3.1); most URIEL-diverse such subset."""
    sub = pool.where(lambda lang: lang.script != "Latin")
    return diverse_subset(sub, n, seed, groups=lambda lang: lang.script, heuristic="script_diverse", **params)


@SELECTORS.register("latin_diverse")
def latin_diverse(pool: Pool, n: int, seed: int = 0, **params: Any) -> Selection:
    """Most URIEL-diverse subset of the Latin-script languages (Section 3.1 (2))."""
    sub = pool.where(lambda lang: lang.script == "Latin")
    return diverse_subset(sub, n, seed, direction="max", heuristic="latin_diverse", **params)


@SELECTORS.register("latin_least_diverse")
def latin_least_diverse(pool: Pool, n: int, seed: int = 0, **params: Any) -> Selection:
    """Least URIEL-diverse subset of the Latin-script languages (Section 3.1 (3))."""
    sub = pool.where(lambda lang: lang.script == "Latin")
    return diverse_subset(sub, n, seed, direction="min", heuristic="latin_least_diverse", **params)


@SELECTORS.register("joshi")
def joshi(pool: Pool, n: int, seed: int = 0, classes: Sequence[int] = (2,), **params: Any) -> Selection:
    """Pool restricted to Joshi classes (e.g. [2], [3], [3, 4, 5], [4, 5]), then most URIEL-diverse."""
    want = {int(c) for c in classes}
    sub = pool.where(lambda lang: lang.joshi_class in want)
    return diverse_subset(sub, n, seed, heuristic="joshi", extra={"classes": sorted(want)}, **params)


def pool_code(code: str) -> str:
    """``code`` as the L65 pool writes it (see ``POOL_ALIASES``); other codes unchanged."""
    return POOL_ALIASES.get(code, code)


@lru_cache(maxsize=1)
def _seen_table() -> dict[str, frozenset[str]]:
    text = resources.files("langadapt").joinpath("resources", SEEN_RESOURCE).read_text(encoding="utf-8")
    origin = f"langadapt/resources/{SEEN_RESOURCE}"
    lines = [(k, line) for k, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.startswith("#")]
    header = lines[0][1].split("\t")
    if header[:2] != ["model", "iso639_3"]:
        raise ConfigError(f"{origin}:{lines[0][0]}: expected columns model, iso639_3, ...; got {header}")
    table: dict[str, set[str]] = {}
    for k, line in lines[1:]:
        f = line.split("\t")
        if len(f) < 2 or not f[1].strip():
            raise ConfigError(f"{origin}:{k}: bad row {line!r}")
        table.setdefault(f[0].strip(), set()).add(pool_code(f[1].strip()))
    return {m: frozenset(c) for m, c in table.items()}


def seen_languages(model: str) -> frozenset[str]:
    """ISO 639-3 codes (pool spelling) of the languages ``model`` (``xlmr`` or ``mbert``) saw in pretraining:
    XLM-R's 100 CC-100 languages, mBERT's 104 Wikipedia languages (``resources/seen_languages.tsv``)."""
    table = _seen_table()
    if model not in table:
        raise ConfigError(f"unknown model {model!r} for the seen-language lists; known: {', '.join(sorted(table))}")
    return table[model]


def _seen_args(name: str, seen: Sequence[str] | None, model: str | None) -> None:
    if seen is not None and model is not None:
        raise ConfigError(f"{name}: give either `seen` (a list of ISO 639-3 codes) or `model` "
                          f"({' | '.join(SEEN_MODELS)}), not both")
    if seen is None and model is None:
        raise ConfigError(f"{name}: give `model` ({' | '.join(SEEN_MODELS)}) or `seen`, the languages the base "
                          f"model was pretrained on")
    if model is not None and model not in SEEN_MODELS:
        raise ConfigError(f"{name}: unknown model {model!r}; known: {', '.join(SEEN_MODELS)}")
    if seen is not None and (isinstance(seen, str) or not all(isinstance(c, str) for c in seen)):
        raise ConfigError(f"{name}: `seen` must be a list of ISO 639-3 codes, not {seen!r}")


def _seen_split(pool: Pool, seen: Sequence[str] | None, model: str | None, keep_seen: bool,
                name: str) -> tuple[Pool, dict[str, Any]]:
    _seen_args(name, seen, model)
    seen_set = seen_languages(model) if model is not None else {pool_code(c) for c in seen}
    extra = {"model": model} if model is not None else {"seen_given": len(seen)}
    return pool.where(lambda lang: (lang.code in seen_set) == keep_seen), extra


def check_params(name: str, params: Mapping[str, Any], where: str = "") -> None:
    """Config-time checks of a selector's parameters that need no selection run (a ConfigError naming
    ``where``): for ``seen``/``unseen``, exactly one of ``model`` (xlmr | mbert) and ``seen``."""
    try:
        if name in ("seen", "unseen"):
            _seen_args(name, params.get("seen"), params.get("model"))
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None


@SELECTORS.register("seen")
def seen(pool: Pool, n: int, seed: int = 0, seen: Sequence[str] | None = None, model: str | None = None,
         **params: Any) -> Selection:
    """Languages seen by the base model in pretraining (``model: xlmr | mbert`` for the packaged lists, or
    an explicit ``seen`` list), then most URIEL-diverse."""
    sub, extra = _seen_split(pool, seen, model, True, "seen")
    return diverse_subset(sub, n, seed, heuristic="seen", extra=extra, **params)


@SELECTORS.register("unseen")
def unseen(pool: Pool, n: int, seed: int = 0, seen: Sequence[str] | None = None, model: str | None = None,
           **params: Any) -> Selection:
    """Languages not seen by the base model (``model`` or ``seen`` as for ``seen``), then most URIEL-diverse."""
    sub, extra = _seen_split(pool, seen, model, False, "unseen")
    return diverse_subset(sub, n, seed, heuristic="unseen", extra=extra, **params)


@SELECTORS.register("random")
def random_subset(pool: Pool, n: int, seed: int = 17, exclude: Sequence[str] = (ENGLISH,), **_: Any) -> Selection:
    """Uniform random subset (``random.Random(seed).sample`` over the pool order); paper seeds 17, 23, 42, 66.

    The paper does not publish its sampler, so subsets will not match its Table 6.
    """
    t0 = time.perf_counter()
    codes = [c for c in pool.codes if c not in set(exclude)]
    _check_n(n, len(codes), "random")
    picked = set(random.Random(seed).sample(codes, n))
    languages = [c for c in codes if c in picked]
    return Selection(languages, {"heuristic": "random", "n": n, "seed": seed, "pool_size": len(codes),
                                 "objective": None, "optimal": None, "solver": "random.Random.sample",
                                 "wall_s": round(time.perf_counter() - t0, 4)})


# -------------------------------------------------------------------------------------------- donor
def select_donors(
    embeddings: Mapping[str, Sequence[float]], targets: Sequence[str], donors: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """For each target language, the most cosine-similar donor language (LangSAMP Section 5.3).

    Returns ``{target: {"donor": code, "similarity": float}}``; a target that is itself a donor is
    matched to the best *other* donor. Ties go to the first donor in ``donors`` order.
    """
    missing = [c for c in [*targets, *donors] if c not in embeddings]
    if missing:
        raise ConfigError(f"donor: no language embedding for {sorted(set(missing))}")
    if not donors:
        raise ConfigError("donor: empty donor list")
    dmat = np.stack([np.asarray(embeddings[c], dtype=np.float64) for c in donors])
    dmat = dmat / np.maximum(np.linalg.norm(dmat, axis=1, keepdims=True), 1e-12)
    out: dict[str, dict[str, Any]] = {}
    for t in targets:
        v = np.asarray(embeddings[t], dtype=np.float64)
        sims = dmat @ (v / max(np.linalg.norm(v), 1e-12))
        order = [k for k in np.argsort(-sims, kind="stable") if donors[k] != t]
        if not order:
            raise ConfigError(f"donor: no donor other than {t!r}")
        k = int(order[0])
        out[t] = {"donor": donors[k], "similarity": round(float(sims[k]), 6)}
    return out


def language_embeddings_from_model(model_dir: str | Path) -> dict[str, np.ndarray]:
    """Language embeddings (code -> vector) of a LangSAMP model directory, via ``read_tables``."""
    from langadapt.train.objective import read_tables

    got = read_tables(Path(model_dir))
    if got is None:
        raise ConfigError(f"{model_dir}: no LangSAMP tables (langsamp.safetensors) there")
    tables, meta = got
    if "language_embeddings" not in tables or not isinstance(meta.get("languages"), Mapping):
        raise ConfigError(f"{model_dir}: the LangSAMP tables have no language embeddings (variant "
                          f"{meta.get('variant')!r}; tables {sorted(tables)})")
    table = tables["language_embeddings"].float().numpy()
    return {str(c): table[int(i)] for c, i in meta["languages"].items()}


@SELECTORS.register("donor")
def donor(pool: Pool, n: int = 0, seed: int = 0, embeddings: Any = None, donors: Sequence[str] = (),
          targets: Sequence[str] | None = None, **_: Any) -> Selection:
    """Donor per target (``embeddings``: dict code -> vector or a LangSAMP model directory).

    ``languages`` = the distinct donors used (donor-list order); ``record["donors"]`` the per-target map.
    ``n`` is ignored. Targets default to the pool's languages that are not donors.
    """
    t0 = time.perf_counter()
    if embeddings is None:
        raise ConfigError("donor: give `embeddings` (dict code -> vector, or a LangSAMP model directory)")
    if isinstance(embeddings, (str, Path)):
        embeddings = language_embeddings_from_model(embeddings)
    if targets is None:
        targets = [c for c in pool.codes if c not in set(donors) and c in embeddings]
    mapping = select_donors(embeddings, list(targets), list(donors))
    used = {m["donor"] for m in mapping.values()}
    return Selection([d for d in donors if d in used], {
        "heuristic": "donor", "donors": mapping, "objective": None, "optimal": None,
        "solver": "cosine argmax", "wall_s": round(time.perf_counter() - t0, 4)})


def select(name: str, pool: Pool | None = None, n: int = 10, seed: int = 0, **params: Any) -> Selection:
    """``SELECTORS.get(name)(pool or load_pool(), n, seed, **params)``."""
    return SELECTORS.get(name)(pool if pool is not None else load_pool(), n, seed, **params)


def selection_job(spec: Mapping[str, Any], config_langs: Sequence[str], out: Path) -> list[str]:
    """The ``select_languages`` rule: run the selector of a realignment entry's ``languages:`` spec
    (``{select: name, n: k, seed: s, ...parameters}``) over the L65 pool restricted to the ISO 639-3 codes
    of `config_langs`, and write ``{"languages": [lang_Script...], "iso": [...], "spec": {...},
    "record": {...}}`` to `out` (JSON; ``spec`` is the entry's selector spec, read by the subsets table).
    Returns the selected config language codes (every variety of a selected ISO code)."""
    import json

    from langadapt.core.languages import parse_lang

    params = {k: v for k, v in spec.items() if k not in ("select", "n", "seed")}
    by_iso: dict[str, list[str]] = {}
    for code in config_langs:
        # a config code may be the macrolanguage / individual code the pool does not use (cmn for zho, ...)
        by_iso.setdefault(pool_code(parse_lang(code, where="languages").iso), []).append(code)
    pool = load_pool()
    pool = pool.subset([c for c in pool.codes if c in by_iso])
    sel = select(str(spec["select"]), pool, int(spec["n"]), int(spec.get("seed", 0)), **params)
    langs = sorted(code for iso in sel.languages for code in by_iso[iso])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    doc = {"languages": langs, "iso": list(sel.languages), "spec": dict(spec), "record": sel.record}
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    tmp.replace(out)
    log.info("selected %s: %s", spec["select"], ", ".join(langs))
    return langs
