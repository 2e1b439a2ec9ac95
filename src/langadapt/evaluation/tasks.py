"""Evaluation tasks behind one registry, and :func:`evaluate`, the entry point of one evaluation job.

A task kind is a registered :class:`Task` subclass. It is built from its config params (every key has
a default in ``Task.defaults``; unknown keys are a ConfigError) and has
``run(model_dir, data, seed) -> list[{"language", "metric", "value"}]``. One job evaluates one model on
one task with one seed, for all languages of the task; :func:`evaluate` adds the provenance columns and
writes the long-format CSV ``recipe, task, language, seed, metric, value, config_hash, code_version,
packages`` (``packages``: ``name=version`` of the job's python, torch, transformers, ...)
atomically (see docs/architecture.md, "Evaluation rows").

Example task config (``kind`` picks the class; the rest are its params)::

    sr_b: {kind: retrieval_bible, layer: 8, max_sentences: 500, k: [1, 10]}

Workflow inputs: a task kind declares in ``Task.inputs`` which workflow files it reads (a subset of
:data:`INPUT_KINDS`: ``corpora`` = the pretraining corpus of each of its languages, ``parallel`` = the Bible
verse pairs). Dataset-backed kinds (a ``dataset`` param) read their data themselves and declare nothing, so
the workflow gives their jobs only the model (plus existing local dataset files, :func:`task_local_inputs`)
and a changed corpus never reruns them. :func:`task_inputs` answers for a task config without torch.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from langadapt.core.atomic import atomic_file
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang
from langadapt.core.provenance import packages_string
from langadapt.core.registry import Registry

log = logging.getLogger(__name__)

ROW_COLUMNS = ["recipe", "task", "language", "seed", "metric", "value", "config_hash", "code_version", "packages"]
CORPUS_COLUMNS = ("verse_id", "book", "text", "split")
# Keys of a task config that belong to the workflow rather than to the task class: `languages`
# restricts the evaluated languages (default: the config languages; the pivot is included where the kind
# uses it, Task.uses_pivot); `recipes`
# (a subset of the evaluated recipes) and `seeds` (replacing evaluation.seeds) choose the task's jobs
# (langadapt.config.eval_jobs).
WORKFLOW_KEYS = frozenset({"kind", "languages", "seeds", "recipes"})
# What a task kind may read from the workflow besides the model (Task.inputs).
INPUT_KINDS = frozenset({"corpora", "parallel"})


@dataclass(frozen=True)
class TaskData:
    """Inputs of a task: its languages, the pivot, and (only for kinds reading them) the corpora and pairs.

    ``languages`` are the task's languages, pivot included (sorted, deduplicated); left out, they are exactly
    the languages of ``corpus_paths`` (the older call ``TaskData(corpus_paths, pivot)``). ``corpus_paths``
    (one corpus parquet per language) is needed only by kinds with ``"corpora"`` in ``Task.inputs``; when
    given together with ``languages`` it must cover every one of them.
    """

    corpus_paths: Mapping[str, Path] | None = None
    pivot: str = "eng_Latn"
    parallel_path: Path | None = None
    languages: Sequence[str] | None = None
    with_pivot: bool = True  # False: `languages` as given, the pivot only if among them (Task.uses_pivot)
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.languages is None:
            if self.corpus_paths is None:
                raise ValueError("TaskData needs languages or corpus_paths")
            langs = sorted(self.corpus_paths)  # the older call: exactly the languages of the corpora
        elif isinstance(self.languages, str):
            raise ValueError(f"TaskData.languages must be a list of language codes, got {self.languages!r}")
        else:
            langs = sorted(set(self.languages) | ({self.pivot} if self.with_pivot else set()))
        object.__setattr__(self, "languages", langs)
        if self.corpus_paths is not None:
            if missing := [lang for lang in langs if lang not in self.corpus_paths]:
                raise ValueError(f"TaskData: languages {missing} have no corpus in corpus_paths")
            object.__setattr__(self, "corpus_paths", {lang: Path(p) for lang, p in self.corpus_paths.items()})

    @property
    def targets(self) -> list[str]:
        """All languages except the pivot, sorted."""
        return [lang for lang in self.languages if lang != self.pivot]

    def split_texts(self, kind: str, split: str, limit: int | None = None) -> dict[str, list[str]]:
        """Per language, the non-blank texts of a corpus split in verse order (at most `limit`); DataError
        naming the task kind and the corpus file when a language has none (before any model is loaded)."""
        texts = {}
        for lang in self.languages:
            df = self.corpus(lang)
            rows = df.loc[df["split"] == split].sort_values("verse_id")
            texts[lang] = [t for t in rows["text"].tolist() if t and t.strip()][:limit]
            if not texts[lang]:
                where = self.corpus_paths[lang] if self.corpus_paths else lang
                raise DataError(f"{kind}: the corpus of {lang} ({where}) has no {split} sentences")
        return texts

    def corpus(self, lang: str) -> pd.DataFrame:
        """The corpus of `lang` (validated, one row per verse id; read once and cached)."""
        if self.corpus_paths is None or lang not in self.corpus_paths:
            raise DataError(
                f"no corpus of {lang} among the task's inputs: only task kinds declaring 'corpora' in "
                f"Task.inputs are given the corpora"
            )
        if lang not in self._cache:
            self._cache[lang] = read_corpus(Path(self.corpus_paths[lang]))
        return self._cache[lang]


class Task:
    """Base class of evaluation tasks. Subclasses set ``kind``, ``defaults`` and implement ``run``."""

    kind: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    # Workflow files the kind reads (subset of INPUT_KINDS). A kind with a `dataset` param that does not
    # set it itself reads nothing from the workflow (see __init_subclass__), whatever its base class reads.
    inputs: ClassVar[frozenset[str]] = frozenset()
    # Inference only over a few hundred sentences (no fine-tuning): the job takes one thread, so two such
    # jobs share a 2-core machine and their start-up (imports, model load) overlaps.
    light: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "inputs" not in cls.__dict__ and "dataset" in cls.defaults:
            cls.inputs = frozenset()
        if unknown := sorted(set(cls.inputs) - INPUT_KINDS):
            raise TypeError(
                f"{cls.__name__}.inputs: unknown input kind(s) {unknown}; known: {sorted(INPUT_KINDS)}"
            )

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

    @classmethod
    def inputs_for(cls, task_cfg: Mapping[str, Any]) -> frozenset[str]:
        """Workflow inputs of this kind for one task config (``inputs``; a kind may refine it by params)."""
        return cls.inputs

    @property
    def uses_pivot(self) -> bool:
        """Whether the pivot is always among the evaluated languages (retrieval queries, zero-shot transfer
        reporting the source too). False for kinds whose languages are exactly those asked for."""
        return True

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


def task_inputs(task_cfg: Mapping[str, Any]) -> frozenset[str]:
    """Workflow inputs (subset of ``{"corpora", "parallel"}``) that the task of a config mapping reads.

    Torch-free (the workflow calls it at DAG time); ConfigError for a config without a known ``kind``.
    """
    if not isinstance(task_cfg, Mapping) or "kind" not in task_cfg:
        raise ConfigError(f"evaluation task config must be a mapping with a 'kind' key, got {task_cfg!r}")
    return TASKS.get(task_cfg["kind"]).inputs_for(task_cfg)


def task_local_inputs(task_cfg: Mapping[str, Any], languages: Sequence[str]) -> list[str]:
    """Local dataset files / folders the task reads for `languages` that exist now (hub data: none).

    For the workflow to declare them as inputs, so that editing a local dataset reruns its tasks.
    """
    from langadapt.evaluation.datasets import build_dataset

    spec = task_cfg.get("dataset") if isinstance(task_cfg, Mapping) else None
    if not isinstance(spec, Mapping) or "kind" not in spec:
        return []
    return build_dataset(spec).local_inputs(languages)


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
    corpus_paths: Mapping[str, Path] | None,
    parallel_path: Path | None,
    pivot: str,
    seed: int,
    recipe: str,
    config_hash: str,
    code_version: str,
    out_csv: Path,
    languages: Sequence[str] | None = None,
    packages: str | None = None,
) -> pd.DataFrame:
    """Run one evaluation job (one model x task x seed, all languages) and write its rows CSV.

    `languages` are the job's languages (the workflow passes ``config.job_languages``: the task's
    ``languages`` or the config's, narrowed by ``evaluation.recipe_languages``); left out, the languages
    of `corpus_paths`. A ``languages`` key of `task_cfg` narrows them further; the pivot is added where the
    task uses it (``Task.uses_pivot``). `corpus_paths` / `parallel_path` are needed only when the task kind reads
    them (``Task.inputs``) and are ignored otherwise. Config, languages and inputs are checked before the
    model is loaded; the CSV is written to a temporary file and renamed, so an interrupted job leaves
    nothing at `out_csv`.
    """
    task = build_task(task_cfg, task_name)
    reads = task_inputs(task_cfg)
    parse_lang(pivot, where=f"evaluation task {task_name!r} pivot")
    if languages is None:
        if corpus_paths is None:
            raise ConfigError(f"task {task_name!r}: no languages given (neither languages nor corpus_paths)")
        languages = list(corpus_paths)
    if isinstance(languages, str):
        raise ConfigError(
            f"task {task_name!r}: languages must be a list of language codes, got {languages!r}"
        )
    for lang in languages:
        parse_lang(lang, where=f"languages of evaluation task {task_name!r}")
    langs = set(languages)
    wanted = task_cfg.get("languages")
    if wanted is not None:
        if isinstance(wanted, str) or not all(isinstance(x, str) for x in wanted):
            raise ConfigError(
                f"task {task_name!r}: languages must be a list of language codes, got {wanted!r}"
            )
        if missing := sorted(set(wanted) - langs):
            raise ConfigError(f"task {task_name!r}: languages {missing} are not among the task's languages")
        langs &= set(wanted)
    if task.uses_pivot:
        langs.add(pivot)
    elif not langs:
        raise ConfigError(f"task {task_name!r}: no languages to evaluate")
    paths: dict[str, Path] | None = None
    if "corpora" in reads:
        given = {lang: Path(p) for lang, p in (corpus_paths or {}).items()}
        for lang in given:
            parse_lang(lang, where=f"corpora of evaluation task {task_name!r}")
        if pivot not in given:
            raise ConfigError(
                f"pivot language {pivot!r} of task {task_name!r} has no corpus among the inputs"
            )
        if missing := sorted(langs - set(given)):
            raise ConfigError(f"task {task_name!r}: languages {missing} have no corpus among the inputs")
        paths = {lang: given[lang] for lang in sorted(langs)}
        for lang, p in paths.items():
            if not p.is_file():
                raise DataError(f"corpus of {lang} for task {task_name!r} does not exist: {p}")
    parallel = Path(parallel_path) if parallel_path and "parallel" in reads else None
    if "parallel" in reads and (parallel is None or not parallel.is_file()):
        raise DataError(f"parallel pairs for task {task_name!r} do not exist: {parallel_path}")
    if not (Path(model_dir) / "config.json").is_file():
        raise DataError(f"model directory {model_dir} has no config.json")
    data = TaskData(paths, pivot, parallel, languages=sorted(langs), with_pivot=task.uses_pivot)
    log.info(
        "evaluating %s on task %s (%s), seed %d, %d languages",
        model_dir,
        task_name,
        task.kind,
        seed,
        len(data.languages),
    )
    rows = task.run(Path(model_dir), data, int(seed))
    df = rows_frame(
        rows,
        recipe=recipe,
        task=task_name,
        seed=int(seed),
        config_hash=config_hash,
        code_version=code_version,
        packages=packages if packages is not None else packages_string(),
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
    constants.setdefault("packages", "")
    for key, value in constants.items():
        df[key] = value
    return df[ROW_COLUMNS]


def write_csv_atomic(df: pd.DataFrame, out: Path) -> None:
    """Write `df` as CSV to `out` atomically (`langadapt.core.atomic`)."""
    with atomic_file(out) as tmp:
        df.to_csv(tmp, index=False)
