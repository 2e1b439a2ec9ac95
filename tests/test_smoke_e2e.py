"""End-to-end: the smoke config runs the whole DAG; tables hold a finite number per language and task.

One workflow run per test session (module-scoped), in a temporary copy of the workflow.
"""

from __future__ import annotations

import json
import math
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
                                 "code_version"}
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
    hyper = json.loads((smoke / "results/hypernet/tiny/hypernet.json").read_text())
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
