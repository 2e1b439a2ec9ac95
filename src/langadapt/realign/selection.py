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

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import ConfigError
from langadapt.core.registry import Registry
from langadapt.realign.pool import ENGLISH, SEEN_MODELS, Pool, load_pool, pool_code, seen_languages
from langadapt.realign.solvers import Selection, check_n, diverse_subset

log = logging.getLogger(__name__)

PAPER_SEEDS = (17, 23, 42, 66)

SELECTORS: Registry[Callable[..., Selection]] = Registry("language selector")


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


POOL_DRAWS = ("uriel", "random")


def _from_pool(sub: Pool, n: int, seed: int, by: str, heuristic: str, extra: dict[str, Any],
               **params: Any) -> Selection:  # fmt: skip
    """`n` languages of a resource pool (§6): the most URIEL-diverse (``by: uriel``, Table 6's "(Most URIEL)"
    rows) or drawn at random with the run's seed (``by: random``, Table 1: "randomly sampling 10 languages
    from different pools"; App. A.5: the seed also draws the subset)."""
    if by not in POOL_DRAWS:
        raise ConfigError(f"{heuristic}: by must be one of {', '.join(POOL_DRAWS)}, got {by!r}")
    if by == "random":
        sel = random_subset(sub, n, seed)
        return Selection(sel.languages, {**sel.record, "heuristic": heuristic, "by": "random", **extra})
    return diverse_subset(sub, n, seed, heuristic=heuristic, extra={"by": "uriel", **extra}, **params)


@SELECTORS.register("joshi")
def joshi(pool: Pool, n: int, seed: int = 0, classes: int | Sequence[int] = (0, 1, 2), by: str = "uriel",
          **params: Any) -> Selection:
    """Pool restricted to Joshi classes, then `by` (:func:`_from_pool`). The paper's pools (§6, Table 1 /
    Table 6): "Joshi 2" = the low-resource classes 0-2 (footnote 3: LRLs = 0, 1 and 2; its lists hold aze, bam,
    fon of classes 0-1), "Joshi 3" = [3], "Joshi 3, 4, and 5" = [3, 4, 5], "Joshi 4 and 5" = [4, 5]."""
    want = {int(c) for c in ([classes] if isinstance(classes, int) else classes)}
    sub = pool.where(lambda lang: lang.joshi_class in want)
    return _from_pool(sub, n, seed, by, "joshi", {"classes": sorted(want)}, **params)


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
        if name in ("joshi", "seen", "unseen") and params.get("by", "uriel") not in POOL_DRAWS:
            raise ConfigError(f"{name}: by must be one of {', '.join(POOL_DRAWS)}, got {params['by']!r}")
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}" if where else str(e)) from None


@SELECTORS.register("seen")
def seen(pool: Pool, n: int, seed: int = 0, seen: Sequence[str] | None = None, model: str | None = None,
         by: str = "uriel", **params: Any) -> Selection:
    """Languages seen by the base model in pretraining (``model: xlmr | mbert`` for the packaged lists, or
    an explicit ``seen`` list), then `by` (most URIEL-diverse, or a seeded random draw: Table 1)."""
    sub, extra = _seen_split(pool, seen, model, True, "seen")
    return _from_pool(sub, n, seed, by, "seen", extra, **params)


@SELECTORS.register("unseen")
def unseen(pool: Pool, n: int, seed: int = 0, seen: Sequence[str] | None = None, model: str | None = None,
           by: str = "uriel", **params: Any) -> Selection:
    """Languages not seen by the base model (``model`` or ``seen`` as for ``seen``), then `by`."""
    sub, extra = _seen_split(pool, seen, model, False, "unseen")
    return _from_pool(sub, n, seed, by, "unseen", extra, **params)


@SELECTORS.register("random")
def random_subset(pool: Pool, n: int, seed: int = 17, exclude: Sequence[str] = (ENGLISH,), **_: Any) -> Selection:
    """Uniform random subset (``random.Random(seed).sample`` over the pool order); paper seeds 17, 23, 42, 66.

    The paper does not publish its sampler, so subsets will not match its Table 6.
    """
    t0 = time.perf_counter()
    codes = [c for c in pool.codes if c not in set(exclude)]
    check_n(n, len(codes), "random")
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


def uses_uriel(spec: Mapping[str, Any]) -> bool:
    """Whether a ``languages: {select: ...}`` spec reads URIEL+ distances (the workflow's prepared
    ``uriel_distances.npz``): every selector but ``random``, ``donor`` and pool draws ``by: random``, unless
    the spec brings its own ``features`` / ``distances``."""
    if spec["select"] in ("random", "donor") or spec.get("by") == "random":
        return False
    return "features" not in spec and "distances" not in spec


def selection_job(spec: Mapping[str, Any], config_langs: Sequence[str], out: Path,
                  distances: Path | None = None) -> list[str]:  # fmt: skip
    """The ``select_languages`` rule: run the selector of a realignment entry's ``languages:`` spec
    (``{select: name, n: k, seed: s, ...parameters}``) over the L65 pool restricted to the ISO 639-3 codes
    of `config_langs` (URIEL selectors on the prepared `distances`, see :func:`uses_uriel`), and write ``{"languages": [lang_Script...], "iso": [...], "spec": {...},
    "record": {...}}`` to `out` (JSON; ``spec`` is the entry's selector spec, read by the subsets table).
    Returns the selected config language codes (every variety of a selected ISO code)."""
    import json

    from langadapt.core.languages import parse_lang

    params = {k: v for k, v in spec.items() if k not in ("select", "n", "seed")}
    if distances is not None and uses_uriel(spec):
        params["distances"] = distances
    by_iso: dict[str, list[str]] = {}
    for code in config_langs:
        # a config code may be the macrolanguage / individual code the pool does not use (cmn for zho, ...)
        by_iso.setdefault(pool_code(parse_lang(code, where="languages").iso), []).append(code)
    pool = load_pool()
    pool = pool.subset([c for c in pool.codes if c in by_iso])
    sel = select(str(spec["select"]), pool, int(spec["n"]), int(spec.get("seed", 0)), **params)
    langs = sorted(code for iso in sel.languages for code in by_iso[iso])
    doc = {"languages": langs, "iso": list(sel.languages), "spec": dict(spec), "record": sel.record}
    write_text_atomic(json.dumps(doc, indent=1, default=str) + "\n", out)
    log.info("selected %s: %s", spec["select"], ", ".join(langs))
    return langs
