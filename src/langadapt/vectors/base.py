"""External word vectors: the on-disk format every kind produces, its reader/writer, and the kinds.

A word-vector directory (``results/word_vectors/{name}/``, built by the ``word_vectors`` rule) holds:

- ``vectors.npy``: float32 ``[n, d]``;
- ``words.tsv``: header ``word\tlang``, then one row per vector in the same order (``lang`` is a
  ``iso_Script`` code, or empty when the source does not say); the same surface form may appear once per
  language;
- ``meta.json``: ``{"kind": ..., "dim": d, "n": n, ...}`` (how it was built or fetched). When the words
  carry word-boundary markers (ColexNet+ n-grams such as ``$haus$``), ``"boundary_marker": "$"`` says so:
  readers that match words to subword pieces replace the marker by a space (`surface_form`).

OFA and HyperOFA read these (multilingual, aligned vectors such as ColexNet+); see
`langadapt.vocab.spec`. Kinds (registry :data:`WORD_VECTOR_KINDS`, config ``word_vectors: {name: {kind:
...}}``): ``colexnet`` reads the ColexNet+ vectors of OFA/HyperOFA (`langadapt.vectors.kinds`),
``bible_aligned`` builds aligned vectors offline from the verse-aligned corpora.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.registry import Registry
from langadapt.data.remote import Need

log = logging.getLogger(__name__)


@dataclass
class WordVectors:
    words: list[str]
    langs: list[str]
    vectors: np.ndarray  # float32 [n, d]

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)


def save_word_vectors(directory: Path, words: Sequence[str], langs: Sequence[str], vectors: np.ndarray,
                      meta: dict[str, Any]) -> None:
    """Write the three files into an existing directory (use `langadapt.core.atomic.atomic_dir` around it)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(words) != len(vectors) or len(langs) != len(vectors):
        raise ValueError(f"{len(words)} words, {len(langs)} langs and vectors of shape {vectors.shape}")
    directory = Path(directory)
    np.save(directory / "vectors.npy", vectors)
    with open(directory / "words.tsv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
        w.writerow(["word", "lang"])
        w.writerows(zip(words, langs, strict=True))
    (directory / "meta.json").write_text(json.dumps({**meta, "dim": int(vectors.shape[1]), "n": len(words)},
                                                    indent=1) + "\n")


def load_word_vectors(directory: Path) -> WordVectors:
    """Read a word-vector directory; DataError naming the file when something is missing or inconsistent."""
    directory = Path(directory)
    for name in ("vectors.npy", "words.tsv"):
        if not (directory / name).is_file():
            raise DataError(f"word vectors {directory}: {name} is missing")
    vectors = np.load(directory / "vectors.npy")
    words, langs = [], []
    with open(directory / "words.tsv", encoding="utf-8", newline="") as f:
        r = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        header = next(r, None)
        if header != ["word", "lang"]:
            raise DataError(f"{directory / 'words.tsv'}: line 1: expected header 'word<TAB>lang', got {header}")
        for n, row in enumerate(r, start=2):
            if len(row) != 2:
                raise DataError(f"{directory / 'words.tsv'}: line {n}: expected 2 fields, got {len(row)}")
            words.append(row[0])
            langs.append(row[1])
    if vectors.ndim != 2 or len(vectors) != len(words):
        raise DataError(f"word vectors {directory}: {len(words)} words but vectors of shape {vectors.shape}")
    if not words:
        raise DataError(f"word vectors {directory}: empty")
    return WordVectors(words, langs, vectors.astype(np.float32, copy=False))


def read_meta(directory: Path) -> dict[str, Any]:
    """``meta.json`` of a word-vector directory (``{}`` when absent); DataError if it is not JSON."""
    path = Path(directory) / "meta.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def surface_form(word: str, boundary_marker: str | None) -> str:
    """The text a word stands for: boundary markers (ColexNet+ ``$``) become spaces, outer ones dropped
    except one leading space for a word-initial n-gram (``$haus$`` -> `` haus``, ``aus$`` -> ``aus``)."""
    if not boundary_marker or boundary_marker not in word:
        return word
    initial = word.startswith(boundary_marker)
    core = word.replace(boundary_marker, " ").strip()
    return f" {core}" if initial and core else core


def lang_iso(code: str) -> str:
    """ISO 639-3 part of ``iso_Script`` (or of a bare ISO code)."""
    return code.split("_", 1)[0]


def iso_filter(codes: Sequence[str] | None) -> frozenset[str] | None:
    """ISO 639-3 codes of a list of ``iso_Script`` / ``iso`` codes (None = no restriction)."""
    if codes is None:
        return None
    if isinstance(codes, str) or not all(isinstance(c, str) and c for c in codes):
        raise ConfigError(f"expected a list of language codes (e.g. [eng_Latn, nya]), got {codes!r}")
    return frozenset(lang_iso(c) for c in codes)


# ------------------------------------------------------------------------------------------------ kinds
class WordVectorKind:
    """One way to obtain word vectors. ``REQUIRED`` / ``KEYS`` (key -> default) are its config keys;
    ``build`` returns ``(words, langs, vectors [n, d], meta)``."""

    name: ClassVar[str] = ""
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    KEYS: ClassVar[dict[str, Any]] = {}

    def __init__(self, spec: Mapping[str, Any], where: str = "word_vectors") -> None:
        given = {k: v for k, v in spec.items() if k != "kind"}
        known = [*self.REQUIRED, *self.KEYS]
        if unknown := sorted(set(given) - set(known)):
            raise ConfigError(f"{where}: unknown key(s) {unknown} for kind {self.name!r}; known: {sorted(known)}")
        if missing := [k for k in self.REQUIRED if k not in given]:
            raise ConfigError(f"{where}: kind {self.name!r} needs {missing}")
        self.cfg: dict[str, Any] = {**self.KEYS, **given}
        self.where = where
        self.check()

    def check(self) -> None:
        """Validate values (ConfigError naming `where`)."""

    def corpus_languages(self, languages: Sequence[str]) -> list[str]:
        """Languages whose corpora the build reads (out of the config's `languages`)."""
        return []

    def input_files(self) -> list[str]:
        """Local files the build reads (rule inputs)."""
        return []

    def local_files(self) -> list[str]:
        """Local files the build reads, present or not (the preflight checks them)."""
        return self.input_files()

    def needs(self) -> list[Need]:
        """What the build reads from the hub (downloaded by the workflow's download job)."""
        return []

    def build(self, corpora: Mapping[str, Path], threads: int = 1) -> tuple[list[str], list[str], np.ndarray,
                                                                           dict[str, Any]]:
        raise NotImplementedError

    def _int(self, key: str, lo: int = 1, optional: bool = False) -> None:
        check_int(self.cfg[key], f"{self.where}.{key}", lo, optional)


WORD_VECTOR_KINDS: Registry[type[WordVectorKind]] = Registry("word vector kind")


def word_vector_kind(spec: Mapping[str, Any], where: str = "word_vectors") -> WordVectorKind:
    """The configured kind of one ``word_vectors`` entry (ConfigError for an unknown kind or key)."""
    if not isinstance(spec, Mapping) or "kind" not in spec:
        raise ConfigError(f"{where}: expected a mapping with a 'kind' key, got {spec!r}")
    return WORD_VECTOR_KINDS.get(spec["kind"])(spec, where)


def build_word_vectors(spec: Mapping[str, Any], out_dir: Path, corpora: Mapping[str, Path] | None = None,
                       threads: int = 1, where: str = "word_vectors") -> dict[str, Any]:
    """The ``word_vectors`` rule: build/fetch the vectors of one config entry into `out_dir` (atomic).

    `corpora` (lang -> corpus Parquet) are the files of ``kind.corpus_languages``. Returns ``meta.json``.
    """
    from langadapt.core.atomic import atomic_dir

    kind = word_vector_kind(spec, where)
    words, langs, vectors, meta = kind.build(dict(corpora or {}), threads)
    if not words:
        raise DataError(f"{where}: kind {kind.name!r} produced no word vectors")
    meta = {"kind": kind.name, **meta, "spec": dict(spec)}
    with atomic_dir(Path(out_dir)) as tmp:
        save_word_vectors(tmp, words, langs, vectors, meta)
    meta = read_meta(Path(out_dir))
    log.info("%s: %d word vectors of dimension %d (%s)", out_dir, meta["n"], meta["dim"], kind.name)
    return meta
