"""The held-out masked-LM loss task (issue 19 §2): chance for a random head, lower after the head learns,
the same masked tokens for every model and job seed, LangSAMP tables used, errors before the model loads."""

from __future__ import annotations

import math

import pytest
import torch
from test_train_helpers import LANG_PREFIX, make_model_dir, make_tokenizer, repetitive, write_corpus

from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation import TaskData, build_task
from langadapt.models.mlm_head import train_mlm_head

LANGS = sorted(LANG_PREFIX)


def _corpora(tmp_path):
    return {lang: write_corpus(tmp_path / f"{lang}.parquet", repetitive(lang, 120),
                               ["test" if i % 3 == 0 else "train" for i in range(120)])
            for lang in LANGS}  # fmt: skip


def _scores(task_cfg, model_dir, paths, seed=0):
    task = build_task({"kind": "mlm_loss", **task_cfg})
    rows = task.run(model_dir, TaskData(paths, "eng_Latn", languages=LANGS, with_pivot=task.uses_pivot), seed)
    assert {r["metric"] for r in rows} == {"mlm_loss"}
    return {r["language"]: r["value"] for r in rows}


def test_random_head_scores_chance_and_a_trained_head_scores_lower(tmp_path) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    paths = _corpora(tmp_path)
    base = make_model_dir(tmp_path / "base", arch="bert", dropout=0.0)
    before = _scores({}, base, paths)
    assert set(before) == set(LANGS)
    ln_v = math.log(len(make_tokenizer()))
    assert all(abs(v - ln_v) < 0.6 for v in before.values())  # random head: about uniform over 41 pieces
    assert _scores({}, base, paths, seed=5) == before  # the job seed changes nothing: fixed masks
    assert _scores({"mask_seed": 1}, base, paths) != before  # ... and mask_seed does
    model, tok = AutoModelForMaskedLM.from_pretrained(base), AutoTokenizer.from_pretrained(base)
    train_mlm_head(
        model,
        tok,
        {lang: repetitive(lang, 120) for lang in LANGS},
        {},
        {"epochs": 100, "lr": 1e-2, "batch_positions": 64},
    )
    model.save_pretrained(tmp_path / "trained")
    tok.save_pretrained(tmp_path / "trained")
    after = _scores({}, tmp_path / "trained", paths)
    assert all(after[lang] < before[lang] - 1.0 for lang in LANGS)


def test_langsamp_tables_are_part_of_the_score(tmp_path) -> None:
    from transformers import AutoModelForMaskedLM

    from langadapt.train.objective import IdMaps, MLMObjective

    paths = _corpora(tmp_path)
    model_dir = make_model_dir(tmp_path / "m", arch="xlmr", dropout=0.0)
    plain = _scores({}, model_dir, paths)
    objective = MLMObjective(
        AutoModelForMaskedLM.from_pretrained(model_dir), "both", IdMaps.from_inventory(LANGS)
    )
    with torch.no_grad():
        objective.language_embeddings.mul_(200.0)  # large enough to move every prediction
    objective.save_tables(model_dir)
    with_tables = _scores({}, model_dir, paths)
    # the head's LayerNorm damps a shift added before it, but every language's score moves
    assert all(abs(with_tables[lang] - plain[lang]) > 1e-3 for lang in LANGS)


def test_errors_name_the_setting_or_the_language(tmp_path) -> None:
    with pytest.raises(ConfigError, match="mlm_loss.split"):
        build_task({"kind": "mlm_loss", "split": "validation"})
    with pytest.raises(ConfigError, match="mlm_loss.mlm_probability"):
        build_task({"kind": "mlm_loss", "mlm_probability": 1.5})
    paths = {lang: write_corpus(tmp_path / f"{lang}.parquet", repetitive(lang, 10)) for lang in LANGS}
    with pytest.raises(DataError, match=r"corpus of deu_Latn \(.*\) has no test sentences"):
        _scores({}, tmp_path / "no-model-needed", paths)
