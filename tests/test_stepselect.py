"""Checkpoint selection on downstream tasks (select: downstream; LangSAMP §4.1: checkpoints every 5K steps,
"early stopping with the best average performance on downstream tasks"): the pretraining job exports every
selection step, the workflow evaluates each, and the best average is kept."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_train_helpers import LANG_PREFIX, make_model_dir, repetitive, write_corpus

from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation.tasks import ROW_COLUMNS
from langadapt.report.steps import best_step, evals_by_step, select_step_job
from langadapt.train.settings import resolve_config, selection_steps
from langadapt.train.stepselect import StepExporter, step_dir

from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rows(path: Path, task: str, metric: str, values: dict[str, float]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ROW_COLUMNS)
        for lang, v in values.items():
            w.writerow(["r", task, lang, 1, metric, v, "h", "c", ""])
            w.writerow(["r", task, lang, 1, "top1", 0.0, "h", "c", ""])  # not the main metric: ignored
    return path


def test_settings_need_tasks_and_give_the_paper_steps():
    with pytest.raises(ConfigError, match="select 'downstream' needs 'select_tasks'"):
        resolve_config({"select": "downstream"})
    with pytest.raises(ConfigError, match="'select_tasks' is read only by it"):
        resolve_config({"select": "dev_mlm", "select_tasks": ["sr_b"]})
    # LangSAMP §4.1: 150K steps, checkpoints every 5K -> 30 evaluated steps
    cfg = resolve_config({"preset": "langsamp", "select": "downstream", "select_tasks": ["sr_b"]})
    assert selection_steps(cfg) == list(range(5000, 150_001, 5000)) and len(selection_steps(cfg)) == 30
    assert selection_steps({"steps": 12, "eval_every": 5, "checkpoint_every": 4}) == [5, 10, 12]


def test_langsamp_config_selects_on_the_six_tasks():
    from langadapt import config as lc

    cfg = lc.load_config(REPO / "configs/langsamp.yaml")
    for recipe in ("glot500m_repro", "langsamp", "abl_none", "abl_both"):
        sel = lc.step_selection(cfg, recipe)
        assert sel["tasks"] == ["sr_b", "sr_t", "taxi1500", "sib200", "ner", "pos"] and len(sel["steps"]) == 30
    jobs = lc.step_eval_jobs(cfg)
    assert len(jobs) == 6 * 6 * 30 and {seed for *_, seed in jobs} == {1}
    bad = yaml.safe_load((REPO / "configs/langsamp.yaml").read_text())
    bad["pretraining"]["full_langsamp"]["select_tasks"] = ["sr_b", "xnli"]
    with pytest.raises(ConfigError, match=r"pretraining.full_langsamp.select_tasks: \['xnli'\] are not evaluation"):
        lc.prepare_config(bad, source="langsamp.yaml")


def test_best_step_averages_tasks_and_breaks_ties_early():
    scores = {5: {"a": 0.5, "b": 0.5}, 10: {"a": 0.8, "b": 0.4}, 15: {"a": 0.4, "b": 0.8}}
    step, avg = best_step(scores, ["a", "b"])
    assert step == 10 and avg == pytest.approx({5: 0.5, 10: 0.6, 15: 0.6})
    with pytest.raises(DataError, match=r"step 5: no evaluation rows for task\(s\) \['c'\]"):
        best_step(scores, ["a", "c"])
    assert evals_by_step(["e/t1/step5_seed1.csv", "e/t2/step5_seed1.csv", "e/t1/step10_seed1.csv"]) == {
        5: [Path("e/t1/step5_seed1.csv"), Path("e/t2/step5_seed1.csv")], 10: [Path("e/t1/step10_seed1.csv")]}
    with pytest.raises(DataError, match="seed1.csv: not an evaluate_step output"):
        evals_by_step(["e/t1/seed1.csv"])


def test_exporter_skips_written_steps_and_names_missing_ones(tmp_path):
    ex = StepExporter(tmp_path / "run", [4, 8])
    written = []

    def save(out):
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        written.append(out.name)

    assert ex.maybe_export(4, save) and not ex.maybe_export(4, save) and not ex.maybe_export(5, save)
    assert written == ["step4"] and ex.exported() == [4]
    with pytest.raises(DataError, match=r"no exported model for step\(s\) \[8\]"):
        ex.move_into(tmp_path / "out")


def test_pretrain_exports_each_step_and_the_best_is_kept(tmp_path):
    from langadapt.train.mlm import pretrain

    model = make_model_dir(tmp_path / "model")
    corpora = {lang: write_corpus(tmp_path / f"{lang}.parquet", repetitive(lang, 40)) for lang in LANG_PREFIX}
    cfg = dict(steps=12, batch_size=4, seq_len=24, lr=2e-3, warmup_steps=0, checkpoint_every=4, log_every=1,
               seed=7, device="cpu", select="downstream", select_tasks=["t1", "t2"])
    pretrain(model, corpora, tmp_path / "steps", tmp_path / "run", cfg)
    root = tmp_path / "steps"
    assert sorted(p.name for p in (root / "steps").iterdir()) == ["step12", "step4", "step8"]
    w = {s: load_file(step_dir(root, s) / "model.safetensors") for s in (4, 8, 12)}
    final = load_file(root / "model.safetensors")
    key = next(k for k in final if "word_embeddings" in k)
    assert torch.equal(w[12][key], final[key]) and not torch.equal(w[4][key], w[12][key])
    assert json.loads((step_dir(root, 8) / "langadapt.json").read_text())["training"]["step"] == 8
    assert not list((tmp_path / "run" / "exports").rglob("config.json"))  # moved into the stage directory

    # the workflow's evaluation rows: step 8 has the best average over the two tasks
    scores = {4: (0.30, 0.50), 8: (0.45, 0.55), 12: (0.60, 0.20)}
    evals = [p for s, (a, b) in scores.items() for p in (   # evaluate_step's outputs
        _rows(tmp_path / "ev" / "t1" / f"step{s}_seed1.csv", "t1", "top10", {"deu_Latn": a, "hin_Deva": a}),
        _rows(tmp_path / "ev" / "t2" / f"step{s}_seed1.csv", "t2", "macro_f1", {"deu_Latn": b + 0.1, "hin_Deva": b - 0.1}))]
    out = tmp_path / "pretrain"
    assert select_step_job(root, evals, ["t1", "t2"], out) == 8
    assert torch.equal(load_file(out / "model.safetensors")[key], w[8][key])
    meta = json.loads((out / "langadapt.json").read_text())["training"]
    assert meta["selected_step"] == 8 and meta["select"] == "downstream"
    averages = {int(k): v for k, v in meta["step_average"].items()}
    assert averages == pytest.approx({s: sum(v) / 2 for s, v in scores.items()})
    rows = list(csv.DictReader(open(out / "step_scores.csv")))
    assert {(r["step"], r["task"]) for r in rows} >= {("8", "average"), ("12", "t1")} and len(rows) == 9
    assert (out / "step_scores.png").stat().st_size > 1000
