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

import logging
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from langadapt.core.errors import ConfigError
from langadapt.core.languages import Lang, char_script, fasttext_label, parse_lang, script_matches
from langadapt.core.registry import Registry
from langadapt.data.lid import lid_labels, lid_predict
from langadapt.data.stream import HashSet64, normalise_array, text_hashes

log = logging.getLogger(__name__)

# Scripts whose whitespace-separated tokens are not words (ISO 15924).
NO_SPACE_SCRIPTS = frozenset({"Jpan", "Hans", "Hant", "Hani", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr", "Tibt"})


class TextBatch:
    """One batch of lines of one language, with what several filters need computed once (token statistics,
    the Python strings for fastText) and carried over when lines are removed (:meth:`take`).

    ``normal`` says the texts are already whitespace-normalised (``" ".join(t.split()) == t``, as the corpus
    stage makes them); then token statistics and the alphabetic ratio take vectorised shortcuts.
    """

    def __init__(self, texts: pa.Array | Sequence[str], lang: Lang, normal: bool = False) -> None:
        self.texts = texts if isinstance(texts, pa.Array) else pa.array(list(texts), pa.string())
        self.texts = pc.fill_null(self.texts.cast(pa.string()), "")
        self.lang, self.normal = lang, normal
        self._cache: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.texts)

    def cached(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def pylist(self) -> list[str]:
        return self.cached("pylist", self.texts.to_pylist)

    @property
    def tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per line: number of tokens, mean token length, longest token (:func:`token_stats`)."""
        return self.cached("tokens", lambda: _token_stats(self))

    def take(self, mask: np.ndarray) -> TextBatch:
        out = TextBatch(self.texts.filter(pa.array(mask)), self.lang, self.normal)
        for key, value in self._cache.items():
            if key == "pylist":
                out._cache[key] = [t for t, k in zip(value, mask.tolist(), strict=True) if k]
            elif isinstance(value, tuple):
                out._cache[key] = tuple(v[mask] for v in value)
        return out


class CorpusFilter:
    """A filter built from config params; ``keep(batch)`` returns a keep mask over a :class:`TextBatch`.

    ``PARAMS`` maps every accepted parameter to its default; after ``keep``, ``note`` may explain a
    decision that the stats table should show (e.g. why a filter kept everything). A filter instance sees
    the batches of one corpus in order, so it may keep state across them (``dedup`` does).
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

    def keep(self, batch: TextBatch) -> np.ndarray:
        raise NotImplementedError

    def apply(self, texts: Sequence[str], lang: Lang) -> list[bool]:
        """Keep mask of a list of lines (one batch)."""
        return self.keep(TextBatch(texts, lang)).tolist()


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


def token_stats(texts: Sequence[str], lang: Lang) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per line: number of tokens, mean token length, longest token length (characters)."""
    return TextBatch(texts, lang).tokens


def _token_stats(batch: TextBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(batch)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
    if batch.lang.script in NO_SPACE_SCRIPTS:
        lens = [_char_token_lengths(t, batch.lang.script) for t in batch.pylist]
        counts = np.fromiter((len(x) for x in lens), np.int64, n)
        flat = np.fromiter((v for x in lens for v in x), np.int64)
        parents = np.repeat(np.arange(n), counts)
        longest = np.zeros(n, np.int64)
        np.maximum.at(longest, parents, flat)
        total = np.bincount(parents, weights=flat, minlength=n)
        return counts, total / np.maximum(counts, 1), longest
    # whitespace tokens, vectorised on the normalised text, where tokens are separated by single spaces
    text = batch.texts if batch.normal else normalise_array(batch.texts)
    parts = pc.split_pattern(text, " ")
    offsets = parts.offsets.to_numpy()
    flat = pc.utf8_length(pc.list_flatten(parts)).to_numpy(zero_copy_only=False).astype(np.int64)
    counts = np.diff(offsets).astype(np.int64)  # every list has >= 1 element ("" splits into [""])
    longest = np.maximum.reduceat(flat, offsets[:-1])
    total = np.add.reduceat(flat, offsets[:-1])
    counts[total == 0] = 0  # the empty line: no token
    return counts, total / np.maximum(counts, 1), longest


# ------------------------------------------------------------------------------------------ filters
@_register("dedup")
class Dedup(CorpusFilter):
    """Exact duplicates after whitespace normalisation (OpusFilter ``RemoveDuplicates``); keeps the first.

    Lines are compared by a 64-bit hash of their normal form (:class:`HashSet64`, 8 bytes per distinct
    line, across all batches of a corpus): two different lines collide with probability ~n²/2⁶⁵ (3e-5 for
    36M lines), which would drop one of them.
    """

    PARAMS: ClassVar[dict[str, Any]] = {"lowercase": False}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.seen = HashSet64()

    def keep(self, batch: TextBatch) -> np.ndarray:
        text = batch.texts if batch.normal else normalise_array(batch.texts)
        keys = [t.lower() for t in text.to_pylist()] if self.params["lowercase"] else text
        return self.seen.add(text_hashes(keys))


@_register("min_tokens")
class MinTokens(CorpusFilter):
    """Keep lines with at least ``min`` tokens (paper: remove lines of "less than 2 tokens")."""

    PARAMS: ClassVar[dict[str, Any]] = {"min": 2}

    def keep(self, batch: TextBatch) -> np.ndarray:
        return batch.tokens[0] >= self.params["min"]


@_register("avg_token_length")
class AvgTokenLength(CorpusFilter):
    """Keep lines whose mean token length is <= ``max`` characters (paper: "greater than 16" removed)."""

    PARAMS: ClassVar[dict[str, Any]] = {"max": 16}

    def keep(self, batch: TextBatch) -> np.ndarray:
        return batch.tokens[1] <= self.params["max"]


@_register("max_token_length")
class MaxTokenLength(CorpusFilter):
    """Keep lines without a token longer than ``max`` characters (paper: "longer than 32" removed)."""

    PARAMS: ClassVar[dict[str, Any]] = {"max": 32}

    def keep(self, batch: TextBatch) -> np.ndarray:
        return batch.tokens[2] <= self.params["max"]


def _count_class(texts: pa.Array, char_class: str) -> np.ndarray:
    """Per string, the number of characters in the RE2 class `char_class` (runs removed, lengths compared:
    several times faster than counting single-character matches)."""
    length = pc.utf8_length(texts)
    rest = pc.utf8_length(pc.replace_substring_regex(texts, f"[{char_class}]+", ""))
    return pc.subtract(length, rest).to_numpy(zero_copy_only=False)


@_register("alpha_ratio")
class AlphaRatio(CorpusFilter):
    """Keep lines with >= ``min`` alphabetic (letter or mark) share of non-space characters (paper: 50%)."""

    PARAMS: ClassVar[dict[str, Any]] = {"min": 0.5}

    def keep(self, batch: TextBatch) -> np.ndarray:
        alpha = _count_class(batch.texts, r"\p{L}\p{M}")
        if batch.normal:  # only single spaces are left of the separators
            space = pc.count_substring(batch.texts, " ").to_numpy(zero_copy_only=False)
        else:
            space = _count_class(batch.texts, r"\s\p{Z}")
        visible = pc.utf8_length(batch.texts).to_numpy(zero_copy_only=False) - space
        ratio = alpha / np.maximum(visible, 1)
        return (visible > 0) & (ratio >= self.params["min"])


# ------------------------------------------------------------------------------------ language id
def _batch_lid(batch: TextBatch) -> tuple[np.ndarray, np.ndarray]:
    return batch.cached("lid", lambda: lid_predict(batch.pylist))


@_register("lid")
class LanguageId(CorpusFilter):
    """fastText lid.176 language identification, one batched ``predict`` per batch of lines.

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

    def keep(self, batch: TextBatch) -> np.ndarray:
        label = fasttext_label(batch.lang)
        if label not in lid_labels():
            if not self.note:
                self.note = f"fastText lid.176 has no label {label!r} for {batch.lang.code}: LID skipped, all lines kept"
                log.warning(self.note)
            return np.ones(len(batch), bool)
        labels, probs = _batch_lid(batch)
        own, sure = labels == label, probs >= self.params["threshold"]
        return own & sure if self.params["mode"] == "own" else own | ~sure


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

    def keep(self, batch: TextBatch) -> np.ndarray:
        if missing := sorted(self.labels - lid_labels()):
            self.note = f"fastText lid.176 has no label(s) {missing}: not excluded"
        labels, probs = _batch_lid(batch)
        return ~(np.isin(labels, sorted(self.labels)) & (probs >= self.params["threshold"]))


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


class FilterChain:
    """The configured filters over the batches of one corpus, in order, counting per filter what came in
    and what was removed; :meth:`stats` gives the rows of the filter stats table."""

    def __init__(self, lang: Lang | str, filters_cfg: dict[str, Any] | None) -> None:
        self.lang = parse_lang(lang) if isinstance(lang, str) else lang
        self.filters = build_filters(filters_cfg)
        self.source = 0
        self.counts = [[0, 0] for _ in self.filters]  # [input, removed]

    @property
    def lid_index(self) -> int:
        """Position of the first fastText filter (the number of filters when there is none)."""
        return next((i for i, f in enumerate(self.filters) if isinstance(f, LanguageId | LanguageIdExclude)),
                    len(self.filters))  # fmt: skip

    def __call__(self, table: pa.Table, normal: bool = False, start: int = 0, stop: int | None = None,
                 lid: tuple[np.ndarray, np.ndarray] | None = None) -> pa.Table:
        """The rows of `table` whose ``text`` the filters ``[start:stop]`` keep (a batch goes through every
        filter once, possibly in two calls); `lid`: fastText's predictions for every row of `table`, when a
        helper process made them already."""
        if start == 0:
            self.source += table.num_rows
        batch = TextBatch(table.column("text").combine_chunks(), self.lang, normal)
        if lid is not None:
            batch._cache["lid"] = lid
        stop = len(self.filters) if stop is None else stop
        for f, count in zip(self.filters[start:stop], self.counts[start:stop], strict=True):
            before = len(batch)
            if not before:
                break
            mask = np.asarray(f.keep(batch), dtype=bool)
            if mask.shape != (before,):
                raise RuntimeError(f"filter {f.name!r} returned {mask.shape} mask for {before} lines")
            table, batch = table.filter(pa.array(mask)), batch.take(mask)
            count[0] += before
            count[1] += before - len(batch)
        return table

    def stats(self) -> list[dict[str, Any]]:
        """Rows ``lang, filter, input, removed, kept, note``; the first is ``filter="source"``."""
        code = self.lang.code
        rows = [{"lang": code, "filter": "source", "input": self.source, "removed": 0, "kept": self.source,
                 "note": ""}]  # fmt: skip
        kept = self.source
        for f, (seen, removed) in zip(self.filters, self.counts, strict=True):
            rows.append({"lang": code, "filter": f.name, "input": kept, "removed": removed,
                         "kept": kept - removed, "note": f.note})  # fmt: skip
            kept -= removed
            log.info("%s: filter %s removed %d of %d lines", code, f.name, removed, seen)
        return rows


def apply_filters(
    table: pa.Table, lang: Lang | str, filters_cfg: dict[str, Any] | None
) -> tuple[pa.Table, list[dict[str, Any]]]:
    """Apply filters in config order to ``table["text"]`` (one batch); return the kept rows and stats rows.

    Stats rows: ``lang, filter, input, removed, kept, note``; the first row is ``filter="source"``.
    """
    chain = FilterChain(lang, filters_cfg)
    out = chain(table)
    return out, chain.stats()
