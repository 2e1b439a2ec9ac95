"""The outputs the workflow builds, computed once from the config while the DAG is built (torch-free):
the targets of ``rule all`` and the lists several rule files share (evaluation files, training runs,
LangSAMP recipes, the realignment report's selections). The rule files read these; none of them appends to
the targets itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langadapt.config import recipes as rc
from langadapt.report.realign import scaling_recipes


def langsamp_of(config: dict, recipe: str) -> str:
    """The LangSAMP variant of a recipe's pretraining stage (``none`` when it has none or does not set it)."""
    pretrain = config["recipes"][recipe].get("pretrain")
    return config["pretraining"][pretrain].get("langsamp", "none") if pretrain else "none"


@dataclass(frozen=True)
class Targets:
    """Everything the rule files derive from the config once; `all` is ``rule all``'s input."""

    eval_files: list[str]
    train_runs: list[str]
    langsamp_recipes: list[str]  # recipes whose final model is a LangSAMP pretraining run (PCA plots)
    selector_entries: list[str]  # realignment entries whose languages a selector chooses
    scaling_design: dict[str, Any]  # the realignment scaling plot's recipes (report.realign.realign_design)
    scaling_selections: list[str]
    all: list[str]


def targets(config: dict) -> Targets:
    eval_files = [f"results/eval/{recipe}/{task}/seed{seed}.csv" for recipe, task, seed in rc.eval_jobs(config)]
    train_runs = [rc.stage_dir(r, s) for r, s in rc.recipe_stage_pairs(config) if s in ("pretrain", "realign")]
    langsamp_recipes = [
        r for r in config["recipes"]
        if config["recipes"][r].get("pretrain") and langsamp_of(config, r) != "none"
        and rc.final_model_dir(config, r) == rc.stage_dir(r, "pretrain")
    ]
    selector_entries = [n for n, s in config["realignment"].items() if isinstance(s.get("languages"), dict)]
    design = realign_design(config, scaling_recipes(realign_design(config)))
    selections = sorted({f"results/selection/{r['realign']}.json"
                         for r in design["recipes"].values() if isinstance(r["languages"], dict)})
    out = [
        "results/tables/results.csv",
        "results/plots/results.png",
        "results/data/filter_report.csv",
        "results/data/sampling.csv",
        *[f"results/tokenizers/{tok}" for tok in config["tokenizers"]],
    ]
    out += [f"results/model_cards/{r}/README.md" for r in rc.card_recipes(config)]
    if eval_files and config["evaluation"].get("report", {}).get("claims"):
        out += ["results/tables/claims.csv", "results/tables/claims.md", "results/tables/claims.tex"]
    if train_runs:
        out.append("results/plots/loss_curves.png")
    out += rc.hypernet_dirs(config)
    out += [f"results/plots/langsamp/{r}.png" for r in langsamp_recipes]
    if eval_files:
        out.append("results/plots/per_language")
    if selector_entries:
        out += ["results/tables/realign_subsets.csv", "results/tables/realign_subsets.tex"]
        if config["evaluation"].get("report", {}).get("subsets_vs_paper", True):
            out.append("results/tables/realign_subsets_vs_paper.csv")
    if selections:
        out += ["results/tables/realign_scaling.csv", "results/plots/realign_scaling.png"]
    return Targets(eval_files, train_runs, langsamp_recipes, selector_entries, design, selections, out)


def _realign_entry(config: Mapping[str, Any], recipe: str) -> str | None:
    """The realignment entry of a recipe's own realign stage, else of the nearest ancestor's (``from``)."""
    spec = config["recipes"][recipe]
    if "realign" in spec:
        return str(spec["realign"])
    return _realign_entry(config, spec["from"]) if "from" in spec else None


def realign_design(config: Mapping[str, Any], recipes: Sequence[str] | None = None) -> dict[str, Any]:
    """JSON-able description of the evaluated recipes for the scaling plot: ``{"pivot": ...,
    "recipes": {recipe: {"base", "realign", "languages"}}}`` (``realign`` None: no realignment stage)."""
    out = {}
    for recipe in recipes if recipes is not None else rc.eval_recipes(config):
        entry = _realign_entry(config, recipe)
        languages = config["realignment"][entry].get("languages") if entry is not None else None
        out[recipe] = {"base": rc.root_base(config, recipe), "realign": entry, "languages": languages}
    return {"pivot": config["pivot"], "recipes": out}


def similarity_inputs(config: dict, recipe: str, parallel: str) -> dict[str, str]:
    """Inputs of a recipe's similarity job: its final model, the pairs file and, as the baseline, the
    recipe's root base model (omitted when the recipe's final model is that base model)."""
    model = rc.final_model_dir(config, recipe)
    inputs = {"model": model, "parallel": parallel}
    base = rc.base_model_dir(rc.root_base(config, recipe))
    if base != model:
        inputs["baseline"] = base
    return inputs
