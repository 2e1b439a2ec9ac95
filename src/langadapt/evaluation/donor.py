"""Source languages of zero-shot transfer tasks, ``source: donor`` included (LangSAMP §5.3).

A zero-shot task (``token_classification`` with ``protocol: zero_shot``, ``classification``, ``nli``)
fine-tunes on a source language and tests every evaluated language. ``source`` is either one language
code (every target is scored with the model fine-tuned on it; English by default, the papers' protocol)
or ``donor``: LangSAMP §5.3 "Selecting Better Source Language" picks, for each target language, the
donor language whose LangSAMP language embedding is the most cosine-similar to the target's
(:func:`langadapt.realign.selection.select_donors`, ties go to the first donor in list order). A target that
is itself a donor is its own closest donor (cosine 1): it is scored with the run fine-tuned on itself, so
English keeps its English-source score in the donor column (issue 17: it used to be transferred from the
best *other* donor, e.g. eng_Latn from zho_Hani). The donors are the task's ``donors`` param (default
the paper's 10, :data:`PAPER_DONORS`); the embeddings are those stored in the evaluated model directory
(``langsamp.safetensors``, written by LangSAMP pretraining with variant ``language`` or ``both``).

Rules (this module is the one place they live):

* donors the dataset has no train + dev split for are dropped from the candidates (warning) BEFORE
  choosing, as are donors without a language embedding in the model;
* a target without a language embedding (or with no candidate donor other than itself) is scored with
  the model of ``fallback_source`` (warning);
* one model is fine-tuned per source actually used (the fallback shares the model of a donor when it is
  one), each seeded exactly as the single-source run is;
* the map target -> (donor, similarity) is logged at INFO, and each donor-chosen target gets one extra
  row with metric ``donor_similarity`` (:data:`SIMILARITY_METRIC`): ``aggregate.main_metric`` never
  picks it, as every such task also reports ``accuracy``, which ``MAIN_METRICS`` lists.

`langadapt.config.checks.check_donor_task` is the torch-free config-time check that a ``source: donor`` task evaluates
only recipes whose final model holds language embeddings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import parse_lang

log = logging.getLogger(__name__)

DONOR = "donor"  # the `source` value that turns on per-target donor selection
#: LangSAMP §5.3: "10 donor languages that are topologically different"
PAPER_DONORS: tuple[str, ...] = (
    "eng_Latn", "rus_Cyrl", "zho_Hani", "arb_Arab", "hin_Deva",
    "jpn_Jpan", "tur_Latn", "spa_Latn", "ind_Latn", "swa_Latn",
)  # fmt: skip
SIMILARITY_METRIC = "donor_similarity"
#: LangSAMP variants (``pretraining.NAME.langsamp``) whose model has language embeddings; the torch-free
#: mirror of ``langadapt.train.objective.LANGSAMP_VARIANTS`` (tested to agree)
LANGUAGE_EMBEDDING_VARIANTS = frozenset({"language", "both"})

M = TypeVar("M")
Row = dict[str, Any]


# ------------------------------------------------------------------------------------- build time
def check_source_params(kind: str, params: Mapping[str, Any]) -> None:
    """ConfigError (naming ``kind.key``) unless ``source`` is a language code or ``donor``, ``donors`` a
    non-empty list of distinct language codes and ``fallback_source`` a language code."""
    if params["source"] != DONOR:
        parse_lang(params["source"], where=f"{kind}.source (a language code or {DONOR!r})")
    donors = params["donors"]
    if not isinstance(donors, list | tuple) or not donors:
        raise ConfigError(f"{kind}.donors must be a non-empty list of language codes, got {donors!r}")
    for i, code in enumerate(donors):
        if not isinstance(code, str):
            raise ConfigError(f"{kind}.donors[{i}] must be a language code, got {code!r}")
        parse_lang(code, where=f"{kind}.donors[{i}]")
    dups = sorted({c for c in donors if list(donors).count(c) > 1})
    if dups:
        raise ConfigError(f"{kind}.donors lists {dups} more than once")
    parse_lang(params["fallback_source"], where=f"{kind}.fallback_source")


# --------------------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class SourcePlan:
    """Which source language's fine-tuned model scores which target.

    ``groups``: source -> its targets (in target order), sources in fine-tuning order;
    ``similarity``: target -> cosine similarity of its language embedding to its donor's (donor-chosen
    targets only).
    """

    groups: dict[str, list[str]]
    similarity: dict[str, float] = field(default_factory=dict)

    @classmethod
    def single(cls, source: str, targets: Sequence[str]) -> SourcePlan:
        """Every target from one source (the fixed-``source`` protocol)."""
        return cls({source: list(targets)})

    def source_of(self, target: str) -> str:
        """The source language whose model scores `target`."""
        for source, targets in self.groups.items():
            if target in targets:
                return source
        raise KeyError(target)

    def similarity_rows(self) -> list[Row]:
        """One ``donor_similarity`` row per donor-chosen target."""
        return [
            {"language": t, "metric": SIMILARITY_METRIC, "value": v}
            for t, v in sorted(self.similarity.items())
        ]


def choose_donors(
    embeddings: Mapping[str, Any],
    targets: Sequence[str],
    donors: Sequence[str],
    fallback: str,
    usable: Callable[[str], bool] = lambda _: True,
    kind: str = "donor",
) -> SourcePlan:
    """The donor of every target (LangSAMP §5.3), grouped by donor.

    `usable(donor)` says whether the dataset has train + dev data for a donor; unusable donors and donors
    without an embedding are dropped (warning) before choosing. Targets without an embedding, or left
    without a candidate other than themselves, go to `fallback` (warning); DataError when the fallback is
    needed but not `usable`. Sources are ordered as in `donors`, a fallback outside them last.
    """
    no_data = [d for d in donors if not usable(d)]
    if no_data:
        log.warning("%s: donor(s) %s dropped: the dataset has no train + dev data for them", kind, no_data)
    no_emb = [d for d in donors if d not in no_data and d not in embeddings]
    if no_emb:
        log.warning("%s: donor(s) %s dropped: the model has no language embedding for them", kind, no_emb)
    candidates = [d for d in donors if d not in no_data and d not in no_emb]
    own = {t: {"donor": t, "similarity": 1.0} for t in targets if t in candidates}  # its own closest donor
    chosen = [t for t in targets if t in embeddings and t not in own and candidates]
    mapping = {**_select(embeddings, chosen, candidates), **own}
    to_fallback = [t for t in targets if t not in mapping]
    missing = [t for t in to_fallback if t not in embeddings]
    if missing:
        log.warning("%s: no language embedding for %s in the model: fine-tuned on fallback_source %s",
                    kind, missing, fallback)  # fmt: skip
    alone = [t for t in to_fallback if t in embeddings]
    if alone:
        log.warning("%s: no candidate donor for %s (candidates %s): fine-tuned on fallback_source %s",
                    kind, alone, candidates, fallback)  # fmt: skip
    if to_fallback and not usable(fallback):
        raise DataError(f"{kind}: fallback_source {fallback} is needed for {to_fallback} but the dataset has "
                        f"no train + dev data for it")  # fmt: skip
    source_of = {**{t: m["donor"] for t, m in mapping.items()}, **{t: fallback for t in to_fallback}}
    order = [*candidates, *([fallback] if fallback not in candidates else [])]
    groups = {s: [t for t in targets if source_of[t] == s] for s in order}
    plan = SourcePlan({s: ts for s, ts in groups.items() if ts},
                      {t: float(m["similarity"]) for t, m in mapping.items()})  # fmt: skip
    for t in targets:
        sim = f"similarity {plan.similarity[t]:.4f}" if t in plan.similarity else "fallback"
        log.info("%s donor map: %s -> %s (%s)", kind, t, source_of[t], sim)
    return plan


def _select(
    embeddings: Mapping[str, Any], targets: list[str], donors: list[str]
) -> dict[str, dict[str, Any]]:
    if not targets:
        return {}
    from langadapt.realign.selection import select_donors

    return select_donors(embeddings, targets, donors)


def model_language_embeddings(model_dir: Path, kind: str) -> dict[str, Any]:
    """Language embeddings of a LangSAMP model directory; ConfigError naming it when it has none."""
    from langadapt.realign.selection import language_embeddings_from_model

    try:
        return language_embeddings_from_model(model_dir)
    except ConfigError as exc:
        raise ConfigError(
            f"{kind}: source {DONOR!r} needs the LangSAMP language embeddings of the evaluated model, but "
            f"model directory {model_dir} has none ({exc}); evaluate a model pretrained with "
            f"langsamp: language|both, or set a fixed source"
        ) from None


def plan_sources(
    kind: str,
    params: Mapping[str, Any],
    model_dir: Path,
    targets: Sequence[str],
    usable: Callable[[str], bool],
) -> SourcePlan:
    """The :class:`SourcePlan` of a zero-shot task's params: every target from ``source``, or (``source:
    donor``) each from its closest donor, read from the model's language embeddings (before any
    fine-tuning: ConfigError when the model has none)."""
    if params["source"] != DONOR:
        return SourcePlan.single(params["source"], targets)
    embeddings = model_language_embeddings(Path(model_dir), kind)
    return choose_donors(embeddings, targets, list(params["donors"]), params["fallback_source"], usable, kind)


def run_plan(
    plan: SourcePlan, fit: Callable[[str], M], score: Callable[[M, str, str], list[Row]]
) -> list[Row]:
    """Fine-tune one model per source of `plan` (``fit(source)``), score its targets with it
    (``score(model, source, target)``); rows by target language (sorted), then the ``donor_similarity`` rows."""
    by_target: dict[str, list[Row]] = {}
    for source, targets in plan.groups.items():
        model = fit(source)
        for target in targets:
            by_target[target] = score(model, source, target)
        del model  # one fine-tuned model in memory at a time
    return [row for t in sorted(by_target) for row in by_target[t]] + plan.similarity_rows()
