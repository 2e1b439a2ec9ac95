"""retrieval_bible and the evaluate() entry point, with a tiny random BERT and synthetic corpora."""

import random

import numpy as np
import pandas as pd
import pytest
import torch
from eval_helpers import SPECIALS, WORDS, make_model_dir  # noqa: E402,F401

from langadapt.core.errors import ConfigError, DataError
from langadapt.evaluation import TASKS, build_task, evaluate
from langadapt.evaluation import retrieval as retrieval_mod
from langadapt.evaluation.retrieval import encode_mean, load_encoder, select_ids


def random_text(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))


def make_corpora(tmp_path, n=60):
    """eng_Latn and deu_Latn with identical text; fra_Latn with unrelated text and fewer verses."""
    rng = random.Random(0)
    ids = [1_001_000 + i for i in range(1, n + 1)]
    split = ["test" if i % 2 else ("dev" if i % 4 == 0 else "train") for i in range(n)]
    eng = pd.DataFrame(
        {
            "verse_id": np.array(ids, dtype="int64"),
            "book": np.ones(n, dtype="int16"),
            "text": [random_text(rng) for _ in ids],
            "split": split,
        }
    )
    fra = eng.assign(text=[random_text(rng) for _ in ids]).iloc[: n // 2]
    paths = {}
    for lang, df in {"eng_Latn": eng, "deu_Latn": eng.copy(), "fra_Latn": fra}.items():
        paths[lang] = tmp_path / f"{lang}.parquet"
        df.to_parquet(paths[lang], index=False)
    return paths


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("model"))


def _evaluate(model_dir, paths, out, cfg, seed=1):
    return evaluate(model_dir, "sr_b", cfg, paths, None, "eng_Latn", seed, "base", "abc123", "v0", out)


@pytest.mark.parametrize("arch", ["bert", "xlmr"])
def test_identical_text_retrieves_perfectly(arch, model_dir, tmp_path, monkeypatch):
    if arch != "bert":
        model_dir = make_model_dir(tmp_path / "xlmr", arch=arch)
    paths = make_corpora(tmp_path)
    calls = []
    real = retrieval_mod.encode_mean
    monkeypatch.setattr(
        retrieval_mod, "encode_mean", lambda *a, **k: calls.append(k["desc"]) or real(*a, **k)
    )
    out = tmp_path / "eval" / "seed1.csv"
    df = _evaluate(
        model_dir,
        paths,
        out,
        {"kind": "retrieval_bible", "layer": 2, "max_sentences": 20, "k": [1, 5], "batch_size": 7},
    )
    assert calls == ["encode eng_Latn", "encode deu_Latn", "encode fra_Latn"]  # pivot encoded once
    written = pd.read_csv(out)
    assert list(written.columns) == [
        "recipe",
        "task",
        "language",
        "seed",
        "metric",
        "value",
        "config_hash",
        "code_version",
        "packages",
    ]
    assert set(written["language"]) == {"deu_Latn", "fra_Latn"}
    # provenance: the versions of the packages that computed the row
    assert "torch=" in written["packages"].iloc[0] and "transformers=" in written["packages"].iloc[0]
    got = df.set_index(["language", "metric"])["value"]
    assert got[("deu_Latn", "top1")] == 1.0 and got[("deu_Latn", "top5")] == 1.0
    assert 0.0 <= got[("fra_Latn", "top1")] < 1.0
    assert (written["recipe"] == "base").all() and (written["seed"] == 1).all()


def test_layer_truncation_matches_full_model(model_dir):
    from transformers import AutoModel

    texts = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9 w10 w11", ""]
    tok, enc = load_encoder(model_dir, 2, torch.device("cpu"))
    assert len(enc.encoder.layer) == 2
    got = encode_mean(enc, tok, texts, 2, batch_size=2)
    full = AutoModel.from_pretrained(model_dir).eval()
    batch = tok(texts[:3], return_tensors="pt", padding=True, return_special_tokens_mask=True)
    special = batch.pop("special_tokens_mask")
    with torch.inference_mode():
        h = full(**batch, output_hidden_states=True).hidden_states[2]
    mask = (batch["attention_mask"] * (1 - special)).unsqueeze(-1).float()
    want = ((h * mask).sum(1) / mask.sum(1)).numpy()
    np.testing.assert_allclose(got[:3], want, atol=1e-5)
    assert not got[3].any()  # empty text: no real token -> zero vector


def test_select_ids():
    ids = np.arange(100, 0, -1)
    even = select_ids(ids, 5, "even", seed=0)
    assert even.tolist() == [1, 26, 51, 75, 100]
    assert select_ids(ids, 5, "seeded", 3).tolist() == select_ids(ids, 5, "seeded", 3).tolist()
    assert len(set(select_ids(ids, 50, "seeded", 1))) == 50
    assert select_ids(ids[:3], 5, "even", 0).tolist() == [98, 99, 100]


def test_layer_out_of_range(model_dir, tmp_path):
    paths = make_corpora(tmp_path)
    out = tmp_path / "seed1.csv"
    with pytest.raises(ConfigError, match=r"layer 8 .* 3 layers"):
        _evaluate(model_dir, paths, out, {"kind": "retrieval_bible"})
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_config_errors(model_dir, tmp_path):
    paths = make_corpora(tmp_path)
    out = tmp_path / "seed1.csv"
    with pytest.raises(ConfigError, match="'no_such_task'"):
        _evaluate(model_dir, paths, out, {"kind": "no_such_task"})
    with pytest.raises(ConfigError, match="'layers'"):
        _evaluate(model_dir, paths, out, {"kind": "retrieval_bible", "layers": 2})
    with pytest.raises(ConfigError, match="kind"):
        build_task({"layer": 2})
    with pytest.raises(ConfigError, match="retrieval_bible.layer must be an integer"):
        build_task({"kind": "retrieval_bible", "layer": "8"})
    with pytest.raises(ConfigError, match=r"retrieval_bible\.k must"):
        build_task({"kind": "retrieval_bible", "k": [0]})
    with pytest.raises(ConfigError, match="pivot"):
        evaluate(
            model_dir,
            "sr_b",
            {"kind": "retrieval_bible"},
            {"deu_Latn": paths["deu_Latn"]},
            None,
            "eng_Latn",
            1,
            "base",
            "h",
            "v",
            out,
        )
    with pytest.raises(DataError, match="nope.parquet"):
        evaluate(
            model_dir,
            "sr_b",
            {"kind": "retrieval_bible", "layer": 1},
            {**paths, "fra_Latn": tmp_path / "nope.parquet"},
            None,
            "eng_Latn",
            1,
            "base",
            "h",
            "v",
            out,
        )
    assert not out.exists()
    assert "retrieval_bible" in TASKS and "bible_genre" in TASKS


def test_languages_restriction(model_dir, tmp_path):
    paths = make_corpora(tmp_path)
    df = _evaluate(
        model_dir,
        paths,
        tmp_path / "o.csv",
        {"kind": "retrieval_bible", "layer": 1, "k": [1], "languages": ["fra_Latn"]},
    )
    assert set(df["language"]) == {"fra_Latn"}


def test_incomplete_checkpoint_is_rejected(model_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = load_file(broken / "model.safetensors")
    del weights["bert.encoder.layer.0.output.dense.weight"]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(DataError, match=r"broken lacks weights \['encoder.layer.0.output.dense.weight'\]"):
        load_encoder(broken, 2, torch.device("cpu"))


@pytest.mark.parametrize("config", ["config.yaml", "configs/smoke.yaml"])
def test_shipped_task_configs_build(config):
    import pathlib

    import yaml

    path = pathlib.Path(__file__).resolve().parents[1] / config
    if not path.is_file():
        pytest.skip(f"{config} not present")
    from langadapt.evaluation.tasks import WORKFLOW_KEYS

    tasks = yaml.safe_load(path.read_text())["evaluation"]["tasks"]
    assert tasks
    for name, cfg in tasks.items():
        task = build_task(cfg, name)
        # the config's values (the papers' protocol numbers) reach the task unchanged; the rest are defaults
        assert task.kind == cfg["kind"]
        given = {k: v for k, v in cfg.items() if k not in WORKFLOW_KEYS}
        assert {k: task.params[k] for k in given} == given, name
        assert set(task.params) == set(task.defaults)
