"""Evaluation tasks behind one registry, and :func:`evaluate`, the entry point of one evaluation job.

A task kind is a registered :class:`Task` subclass. It is built from its config params (every key has
a default in ``Task.defaults``; unknown keys are a ConfigError) and has
``run(model_dir, data, seed) -> list[{"language", "metric", "value"}]``. One job evaluates one model on
one task with one seed, for all languages of the task; :func:`evaluate` adds the provenance columns and
writes the long-format CSV ``recipe, task, language, seed, metric, value, config_hash, code_version``
atomically (see docs/architecture.md, "Evaluation rows").

Example task config (``kind`` picks the class; the rest are its params)::

    sr_b: {kind: retrieval_bible, layer: 8, max_sentences: 500, k: [1, 10]}
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from langadapt.errors import ConfigError, DataError
from langadapt.languages import parse_lang
from langadapt.registry import Registry

log = logging.getLogger(__name__)

ROW_COLUMNS = ["recipe", "task", "language", "seed", "metric", "value", "config_hash", "code_version"]
CORPUS_COLUMNS = ("verse_id", "book", "text", "split")
# Keys of a task config that belong to the workflow rather than to the task class: `languages`
# restricts the evaluated languages (default: every corpus passed in); `recipes` (a subset of the evaluated
# recipes) and `seeds` (replacing evaluation.seeds) choose the task's jobs (langadapt.config.eval_jobs).
WORKFLOW_KEYS = frozenset({"kind", "languages", "seeds", "recipes"})


@dataclass(frozen=True)
class TaskData:
    """Inputs of a task: one corpus parquet per language, the parallel pairs, the pivot language."""

    corpus_paths: Mapping[str, Path]
    pivot: str = "eng_Latn"
    parallel_path: Path | None = None
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    @property
    def languages(self) -> list[str]:
        """All languages, sorted, pivot included."""
        return sorted(self.corpus_paths)

    @property
    def targets(self) -> list[str]:
        """All languages except the pivot, sorted."""
        return [lang for lang in self.languages if lang != self.pivot]

    def corpus(self, lang: str) -> pd.DataFrame:
        """The corpus of `lang` (validated, one row per verse id; read once and cached)."""
        if lang not in self._cache:
            self._cache[lang] = read_corpus(Path(self.corpus_paths[lang]))
        return self._cache[lang]


class Task:
    """Base class of evaluation tasks. Subclasses set ``kind``, ``defaults`` and implement ``run``."""

    kind: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for evaluation task kind "
                f"{self.kind!r}; known: {', '.join(sorted(self.defaults))}"
            )
        merged = dict(self.defaults)
        for key, value in params.items():
            merged[key] = _check_type(self.kind, key, value, self.defaults[key])
        self.params: dict[str, Any] = merged
        self.validate()

    def validate(self) -> None:
        """Check parameter values (ConfigError naming the key); called by ``__init__``."""

    def run(self, model_dir: Path, data: TaskData, seed: int) -> list[dict[str, Any]]:
        """Evaluate the model in `model_dir`; return rows ``{language, metric, value}``."""
        raise NotImplementedError

    def _positive(self, *keys: str) -> None:
        for key in keys:
            if self.params[key] is not None and self.params[key] <= 0:
                raise ConfigError(f"{self.kind}.{key} must be > 0, got {self.params[key]!r}")


TASKS: Registry[type[Task]] = Registry("evaluation task")


def _check_type(kind: str, key: str, value: Any, default: Any) -> Any:
    """Coerce/validate one param against the type of its default (None default: anything)."""
    where = f"{kind}.{key}"
    if default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true/false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
    elif isinstance(default, list | tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        value = list(value)
    return value


def build_task(task_cfg: Mapping[str, Any], name: str = "") -> Task:
    """Build the task of a config mapping ``{kind: ..., <params>}`` (ConfigError on bad kind/params)."""
    label = f"evaluation task {name!r}" if name else "evaluation task config"
    if not isinstance(task_cfg, Mapping):
        raise ConfigError(f"{label} must be a mapping with a 'kind' key, got {task_cfg!r}")
    if "kind" not in task_cfg:
        raise ConfigError(f"{label} has no 'kind'; known kinds: {', '.join(TASKS.names())}")
    cls = TASKS.get(task_cfg["kind"])
    params = {k: v for k, v in task_cfg.items() if k not in WORKFLOW_KEYS}
    return cls(**params)


def read_corpus(path: Path) -> pd.DataFrame:
    """Read a corpus parquet (architecture.md format) with one row per verse id, sorted by verse id."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"corpus file {path} does not exist")
    try:
        df = pd.read_parquet(path, columns=list(CORPUS_COLUMNS))
    except Exception as exc:  # pyarrow raises several types for missing columns / bad files
        raise DataError(f"cannot read corpus {path} with columns {list(CORPUS_COLUMNS)}: {exc}") from exc
    bad_splits = sorted(set(df["split"].dropna().unique()) - {"train", "dev", "test"})
    if bad_splits:
        raise DataError(f"corpus {path}: unknown split value(s) {bad_splits}")
    df = df.dropna(subset=["verse_id", "text"]).drop_duplicates("verse_id")
    df = df.astype({"verse_id": "int64", "book": "int64"}).sort_values("verse_id", kind="stable")
    return df.reset_index(drop=True)


def model_num_layers(model_dir: Path) -> int:
    """Number of transformer layers of the model in `model_dir` (from its config.json)."""
    from transformers import AutoConfig

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise DataError(f"model directory {model_dir} has no config.json")
    return int(AutoConfig.from_pretrained(model_dir).num_hidden_layers)


def check_layer(model_dir: Path, layer: int) -> int:
    """Raise ConfigError unless ``0 <= layer <= n_layers`` (hidden_states[0] = embeddings)."""
    n_layers = model_num_layers(model_dir)
    if not 0 <= layer <= n_layers:
        raise ConfigError(
            f"layer {layer} requested but the model in {model_dir} has {n_layers} layers "
            f"(valid: 0 = embeddings .. {n_layers})"
        )
    return n_layers


def load_pretrained(auto_cls: Any, model_dir: Path, allowed_missing: tuple[str, ...], **kwargs: Any) -> Any:
    """``auto_cls.from_pretrained(model_dir, **kwargs)`` (float32), checking what was not loaded.

    Weights missing from the checkpoint are freshly initialized by transformers; that is expected
    only for the parts named by `allowed_missing` (regular expressions searched in the key, e.g. a
    new classification head or the pooler absent from MLM checkpoints). Any other missing weight
    means the directory does not hold the expected model: DataError naming it. Unexpected keys
    (the MLM head, layers above the one used) are fine. The verbose load report is replaced by
    one log line.
    """
    import torch
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = auto_cls.from_pretrained(
            model_dir, dtype=torch.float32, output_loading_info=True, **kwargs
        )
    finally:
        hf_logging.set_verbosity(previous)
    missing = sorted(info.get("missing_keys", ()))
    bad = [k for k in missing if not any(re.search(pat, k) for pat in allowed_missing)]
    if bad:
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise DataError(
            f"model directory {model_dir} lacks weights {bad[:5]}{more} for {type(model).__name__}"
        )
    log.info(
        "loaded %s from %s (newly initialized: %s; unused: %d tensors)",
        type(model).__name__,
        model_dir,
        ", ".join(missing) or "none",
        len(info.get("unexpected_keys", ())),
    )
    return model


def evaluate(
    model_dir: Path,
    task_name: str,
    task_cfg: Mapping[str, Any],
    corpus_paths: Mapping[str, Path],
    parallel_path: Path | None,
    pivot: str,
    seed: int,
    recipe: str,
    config_hash: str,
    code_version: str,
    out_csv: Path,
) -> pd.DataFrame:
    """Run one evaluation job (one model x task x seed, all languages) and write its rows CSV.

    Config, languages and inputs are checked before the model is loaded; the CSV is written to a
    temporary file and renamed, so an interrupted job leaves nothing at `out_csv`.
    """
    task = build_task(task_cfg, task_name)
    parse_lang(pivot, where=f"evaluation task {task_name!r} pivot")
    for lang in corpus_paths:
        parse_lang(lang, where=f"corpora of evaluation task {task_name!r}")
    if pivot not in corpus_paths:
        raise ConfigError(f"pivot language {pivot!r} of task {task_name!r} has no corpus among the inputs")
    paths = {lang: Path(p) for lang, p in corpus_paths.items()}
    wanted = task_cfg.get("languages")
    if wanted is not None:
        if isinstance(wanted, str) or not all(isinstance(x, str) for x in wanted):
            raise ConfigError(
                f"task {task_name!r}: languages must be a list of language codes, got {wanted!r}"
            )
        missing = sorted(set(wanted) - set(paths))
        if missing:
            raise ConfigError(f"task {task_name!r}: languages {missing} have no corpus among the inputs")
        paths = {lang: p for lang, p in paths.items() if lang in set(wanted) | {pivot}}
    for lang, p in sorted(paths.items()):
        if not p.is_file():
            raise DataError(f"corpus of {lang} for task {task_name!r} does not exist: {p}")
    if not (Path(model_dir) / "config.json").is_file():
        raise DataError(f"model directory {model_dir} has no config.json")
    data = TaskData(paths, pivot, Path(parallel_path) if parallel_path else None)
    log.info(
        "evaluating %s on task %s (%s), seed %d, %d languages",
        model_dir,
        task_name,
        task.kind,
        seed,
        len(paths),
    )
    rows = task.run(Path(model_dir), data, int(seed))
    df = rows_frame(
        rows,
        recipe=recipe,
        task=task_name,
        seed=int(seed),
        config_hash=config_hash,
        code_version=code_version,
    )
    write_csv_atomic(df, Path(out_csv))
    return df


def rows_frame(rows: list[dict[str, Any]], **constants: Any) -> pd.DataFrame:
    """Long-format frame (``ROW_COLUMNS`` order) of task rows plus constant provenance columns."""
    for i, row in enumerate(rows):
        if set(row) != {"language", "metric", "value"}:
            raise ValueError(f"task row {i} must have keys language, metric, value; got {sorted(row)}")
        if not isinstance(row["value"], int | float) or not math.isfinite(row["value"]):
            raise ValueError(f"task row {i} has a non-finite value: {row}")
    df = pd.DataFrame(rows, columns=["language", "metric", "value"])
    for key, value in constants.items():
        df[key] = value
    return df[ROW_COLUMNS]


def write_csv_atomic(df: pd.DataFrame, out: Path) -> None:
    """Write `df` as CSV to `out` via a temporary file in the same directory + rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            df.to_csv(fh, index=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
