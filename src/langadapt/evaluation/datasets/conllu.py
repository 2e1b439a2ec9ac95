"""CoNLL-U (Universal Dependencies) reading: a strict line parser and the UD UPOS inventory.

Comments are skipped, multiword-token ranges (``1-2``) and empty nodes (``1.1``) are skipped, every other line
must have 10 tab-separated fields and word IDs 1, 2, ... per sentence; every error is a DataError naming
``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang, parse_lang
from langadapt.core.textfiles import read_utf8
from langadapt.evaluation.datasets.base import DATASETS, Examples, FileDataset

# The 17 UD universal POS tags (https://universaldependencies.org/u/pos/), in alphabetical order.
UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"]  # fmt: skip


@dataclass(frozen=True)
class ConlluSentence:
    """The word lines of one sentence: 10 fields each, with their line numbers in the file."""

    rows: list[list[str]]
    lines: list[int]


def parse_conllu(path: str | Path) -> list[ConlluSentence]:
    """Parse a CoNLL-U file: comments skipped, multiword ranges (``1-2``) and empty nodes (``1.1``)
    skipped, every other line must have 10 tab-separated fields and word IDs 1, 2, ... per sentence.
    Errors raise DataError naming ``file:line``."""
    path = Path(path)
    text = read_utf8(path, "CoNLL-U file")
    sentences: list[ConlluSentence] = []
    rows: list[list[str]] = []
    lines: list[int] = []
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if rows:
                sentences.append(ConlluSentence(rows, lines))
                rows, lines = [], []
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(f"{path}:{n}: expected 10 tab-separated fields, got {len(fields)}")
        wid = fields[0]
        if "-" in wid or "." in wid:
            a, _, b = wid.replace(".", "-", 1).partition("-")
            if not (a.isdigit() and b.isdigit()):
                raise DataError(f"{path}:{n}: bad ID {wid!r}")
            continue
        if not wid.isdigit() or int(wid) != len(rows) + 1:
            raise DataError(f"{path}:{n}: bad ID {wid!r} (expected {len(rows) + 1})")
        if not fields[1] or not fields[3]:
            raise DataError(f"{path}:{n}: empty FORM or UPOS")
        rows.append(fields)
        lines.append(n)
    if rows:
        sentences.append(ConlluSentence(rows, lines))
    return sentences


def upos_examples(sentences: Iterable[ConlluSentence], path: Path, source: str) -> tuple[list, list]:
    words, tags = [], []
    for s in sentences:
        for row, n in zip(s.rows, s.lines, strict=True):
            if row[3] not in UPOS:
                raise DataError(f"{path}:{n}: UPOS {row[3]!r} is not a UD UPOS tag ({source})")
        words.append([r[1] for r in s.rows])
        tags.append([r[3] for r in s.rows])
    return words, tags


@DATASETS.register("ud")
class UniversalDependencies(FileDataset):
    """UD treebanks (CoNLL-U) per language: ``treebanks: {lang: UD_X-Y | [..]}``, ``pattern`` in the tree."""

    KEYS: ClassVar[dict[str, Any]] = {**FileDataset.KEYS, "treebanks": {},
                                      "pattern": "{treebank}/*-ud-{split}*.conllu",
                                      "dev_from_train": {}, "seed": 0}  # fmt: skip

    LABEL_NAMES = UPOS

    def __init__(self, spec: Mapping[str, Any]) -> None:
        super().__init__(spec)
        tbs = self.cfg["treebanks"]
        if not isinstance(tbs, Mapping) or not tbs:
            raise ConfigError(f"ud: 'treebanks' must map language codes to treebank folders, got {tbs!r}")
        for code in tbs:
            parse_lang(code, where="ud treebanks")
        # {lang: n}: a treebank without a dev file (e.g. Erzya) gets n sentences of its train split, drawn
        # with `seed`, as its dev split; train keeps the rest (vocabulary-specialization paper, App. A)
        carve = self.cfg["dev_from_train"]
        if not isinstance(carve, Mapping) or any(
            isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in carve.values()
        ):
            raise ConfigError(
                f"ud: 'dev_from_train' must map language codes to sentence counts, got {carve!r}"
            )
        for code in carve:
            parse_lang(code, where="ud dev_from_train")

    def treebanks(self, lang: Lang) -> list[str]:
        tb = self.cfg["treebanks"].get(lang.code, [])
        return [tb] if isinstance(tb, str) else list(tb)

    def _covers(self, lang: Lang) -> bool:
        return bool(self.treebanks(lang))

    def hub_patterns(self, lang: Lang) -> list[str]:
        return [f"{tb}/*.conllu" for tb in self.treebanks(lang)]

    def local_files(self, lang: Lang) -> list[Path]:
        return [Path(self.cfg["path"]) / tb for tb in self.treebanks(lang)] if self.cfg["path"] else []

    def _load(self, lang: Lang, split: str) -> Examples:
        n_dev = self.cfg["dev_from_train"].get(lang.code)
        if n_dev is not None and split in ("train", "dev"):
            train = self._read(lang, "train")
            assert train.words is not None and train.tags is not None
            if n_dev >= len(train):
                raise DataError(
                    f"{train.source}: {len(train)} sentences, cannot carve a dev split of {n_dev}"
                )
            dev = set(
                np.random.default_rng(int(self.cfg["seed"])).choice(len(train), size=n_dev, replace=False)
            )
            keep = [i for i in range(len(train)) if (i in dev) == (split == "dev")]
            return Examples(f"{self.describe()} {lang.code}/{split} (dev = {n_dev} train sentences)", list(UPOS),
                            words=[train.words[i] for i in keep], tags=[train.tags[i] for i in keep])  # fmt: skip
        return self._read(lang, split)

    def _read(self, lang: Lang, split: str) -> Examples:
        words, tags = [], []
        source = f"{self.describe()} {lang.code}/{split}"
        for tb in self.treebanks(lang):
            try:
                found = self.files(str(self.cfg["pattern"]).format(treebank=tb, split=split, lang=lang.code))
            except DataError as e:
                if split != "dev":
                    raise
                raise DataError(f"{e}: treebank {tb} has no dev split (e.g. North Sami Giella, Erzya JR); carve "
                                f"one from train with `dev_from_train: {{{lang.code}: N}}`") from None
            for f in found:
                w, t = upos_examples(parse_conllu(f), f, source)
                words += w
                tags += t
        return Examples(source, list(UPOS), words=words, tags=tags)
