"""CoNLL-U (Universal Dependencies) reading: a strict line parser and the UD UPOS inventory.

Comments are skipped, multiword-token ranges (``1-2``) and empty nodes (``1.1``) are skipped, every other line
must have 10 tab-separated fields and word IDs 1, 2, ... per sentence; every error is a DataError naming
``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from langadapt.core.errors import DataError
from langadapt.core.textfiles import read_utf8

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
