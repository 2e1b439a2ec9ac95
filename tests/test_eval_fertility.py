"""The fertility task: pieces per word (per character without spaces) and UNK rate of a model's tokenizer."""

from __future__ import annotations

import pandas as pd
import pytest
from eval_helpers import make_model_dir

from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation import TaskData, build_task


def _corpus(path, texts, split="test"):
    pd.DataFrame({"verse_id": range(len(texts)), "book": 1, "text": texts, "split": split}).to_parquet(path)
    return path


def test_fertility_is_pieces_per_word_and_unk_share(tmp_path):
    # word-level tokenizer over w0..w59 split on whitespace and punctuation: "w1,w2" is 3 pieces, 1 word;
    # "," and "xx" are unknown; Japanese counts characters (no spaces): "w1w2" is 1 unknown piece for 4 characters
    model = make_model_dir(tmp_path / "m", n_layers=1)
    paths = {
        "eng_Latn": _corpus(tmp_path / "eng.parquet", ["w1 w2 w3", "w1,w2 xx"]),
        "jpn_Jpan": _corpus(tmp_path / "jpn.parquet", ["w1w2", "w3 w4"]),
        "deu_Latn": _corpus(tmp_path / "deu.parquet", ["w1 w2"] * 3, split="train"),
    }
    task = build_task({"kind": "fertility"})
    rows = task.run(model, TaskData(paths, "eng_Latn", languages=["eng_Latn", "jpn_Jpan"], with_pivot=False), 0)
    got = {(r["language"], r["metric"]): r["value"] for r in rows}
    assert got == {
        ("eng_Latn", "fertility"): pytest.approx(7 / 5),  # w1 w2 w3 | w1 , w2 xx
        ("eng_Latn", "unk_rate"): pytest.approx(2 / 7),
        ("jpn_Jpan", "fertility"): pytest.approx(3 / 8),  # "w1w2" (1 UNK) + "w3" "w4"; 8 characters
        ("jpn_Jpan", "unk_rate"): pytest.approx(1 / 3),
    }
    capped = build_task({"kind": "fertility", "max_sentences": 1}).run(
        model, TaskData(paths, "eng_Latn", languages=["eng_Latn"], with_pivot=False), 0
    )
    assert {r["metric"]: r["value"] for r in capped} == {"fertility": 1.0, "unk_rate": 0.0}
    with pytest.raises(DataError, match=r"deu\.parquet\) has no test sentences"):
        task.run(model, TaskData(paths, "eng_Latn", languages=["deu_Latn"], with_pivot=False), 0)
    with pytest.raises(ConfigError, match="fertility.split"):
        build_task({"kind": "fertility", "split": "valid"})
