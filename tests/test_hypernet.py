"""Tests of the HyperOFA hypernetwork skeleton: word vectors, pair matching, loss, training, outputs."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

from langadapt.errors import ConfigError, DataError
from langadapt.hypernet import (
    HYPERNETS,
    build_word_vectors,
    fit_hypernetwork,
    hyperofa_loss,
    load_hypernetwork,
    load_word_vectors,
    match_words,
    resolve_cfg,
    train_hypernetwork,
)
from langadapt.tokenization import train_sentencepiece

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = {"steps": 200, "lr": 3e-3, "dropout": 0.0, "batch_size": 64, "hidden": 64}


def linear_toy(n: int = 400, d_in: int = 16, d_out: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g)
    w = torch.randn(d_in, d_out, generator=g) / d_in**0.5
    offset = torch.randn(d_out, generator=g)  # so that the mean embedding is a real baseline
    return x, 0.1 * (x @ w + offset)


def test_loss_decreases_and_beats_mean_baseline_on_linear_toy():
    x, y = linear_toy()
    net, rows, m = fit_hypernetwork(x, y, FAST)
    assert len(rows) == 200 and [r["step"] for r in rows[:2]] == [1, 2]

    def mean(key: str, part: slice) -> float:
        return float(np.mean([r[key] for r in rows[part]]))

    # InfoNCE has a floor > 0 (targets share an offset, so negatives stay similar): L1 falls most
    assert mean("loss", slice(-20, None)) < 0.75 * mean("loss", slice(0, 20))
    assert mean("l1", slice(-20, None)) < 0.5 * mean("l1", slice(0, 20))
    assert (m["n_pairs"], m["n_train"], m["n_heldout"]) == (400, 360, 40)
    assert m["heldout_cosine"] > m["baseline_cosine"] + 0.1
    assert m["heldout_cosine"] > 0.9 and 0.3 < m["baseline_cosine"] < 0.9
    # same seed, same result
    _, rows2, m2 = fit_hypernetwork(x, y, FAST)
    assert rows2[-1]["loss"] == rows[-1]["loss"] and m2["heldout_cosine"] == m["heldout_cosine"]


def test_hyperofa_loss():
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss, l_c, l_1 = hyperofa_loss(t.clone(), t, lam=0.1, tau=0.25)
    assert float(l_1) == 0.0
    expected_c = -np.log(np.exp(4) / (np.exp(4) + np.exp(0)))  # cos 1 vs 0, over tau = 0.25
    assert float(l_c) == pytest.approx(expected_c, rel=1e-5)
    assert float(loss) == pytest.approx(0.1 * expected_c, rel=1e-5)
    _, _, l_1 = hyperofa_loss(t + 0.5, t, lam=0.1, tau=0.25)
    assert float(l_1) == pytest.approx(0.5)  # normalised by the dimension


def test_match_words_picks_exactly_the_single_piece_words():
    vocab = {"<s>": 0, "▁ka": 4, "▁lo": 5, "mi": 6, "▁zu": 7, "▁": 8, "▁kalo": 9}
    words = ["ka", "mi", "lo", "zu", "qq", "kal", "kalo", ""]
    assert match_words(words, vocab, special_ids={0, 7}) == [(0, 4), (2, 5), (6, 9)]


def test_resolve_cfg():
    assert resolve_cfg(None)["lambda"] == 0.1 and resolve_cfg({})["temperature"] == 0.25
    with pytest.raises(ConfigError, match="lamda"):
        resolve_cfg({"lamda": 0.2})
    with pytest.raises(ConfigError, match="unknown hypernetwork 'bilstm'"):
        resolve_cfg({"kind": "bilstm"})
    with pytest.raises(ConfigError, match="lambda"):
        resolve_cfg({"lambda": 2})
    assert "mlp" in HYPERNETS


def test_mlp_takes_sets_of_vectors():
    net = HYPERNETS.get("mlp")(d_in=4, d_out=3, hidden=8)
    v = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    out = net(v, mask)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out[1], net(v[1:2, :2].mean(1))[0])


SYL = ["ka", "lo", "mi", "ne", "tu", "ra", "so"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("hn")
    rng = random.Random(0)
    # enough distinct words: fastText's frequent-word subsampling drops everything from tiny vocabularies
    words = sorted({"".join(rng.choices(SYL, k=rng.randint(1, 3))) for _ in range(300)})
    texts = [" ".join(rng.choices(words, k=rng.randint(4, 10))) for _ in range(400)]
    train_sentencepiece({"eng_Latn": texts}, root / "src", vocab_size=42)
    tok = AutoTokenizer.from_pretrained(root / "src")
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=40, pad_token_id=1,
    )  # fmt: skip
    XLMRobertaForMaskedLM(cfg).save_pretrained(root / "src")
    info = build_word_vectors(texts, root / "wv" / "vectors.bin", dim=16, epochs=2, min_count=1)
    return root, texts, info


def test_build_word_vectors(source, tmp_path):
    root, texts, info = source
    words, vecs = load_word_vectors(root / "wv" / "vectors.bin")
    assert info == {"words": len(words), "dim": 16} and vecs.shape == (len(words), 16)
    assert "kalo" in words or "ka" in words
    assert [p.name for p in (root / "wv").iterdir()] == ["vectors.bin"]  # no temporary leftovers
    build_word_vectors(texts, tmp_path / "again.bin", dim=16, epochs=2, min_count=1)
    np.testing.assert_array_equal(load_word_vectors(tmp_path / "again.bin")[1], vecs)
    with pytest.raises(DataError, match="no text"):
        build_word_vectors(["", " "], tmp_path / "x.bin")


def test_train_hypernetwork_outputs(source, tmp_path):
    root, _, _ = source
    out = tmp_path / "hn"
    cfg = {**FAST, "steps": 40, "batch_size": 8}
    metrics = train_hypernetwork(root / "src", root / "wv" / "vectors.bin", out, cfg)
    assert {p.name for p in out.iterdir()} == {
        "hypernet.safetensors",
        "hypernet.json",
        "loss.csv",
        "pairs.csv",
    }
    meta = json.loads((out / "hypernet.json").read_text())
    assert meta["metrics"] == metrics and meta["cfg"]["lambda"] == 0.1 and meta["cfg"]["steps"] == 40
    assert meta["model_params"]["d_in"] == 16 and meta["model_params"]["d_out"] == 32
    loss = pd.read_csv(out / "loss.csv")
    assert list(loss.columns) == ["step", "loss", "contrastive", "l1"] and len(loss) == 40
    pairs = pd.read_csv(out / "pairs.csv", keep_default_na=False)
    vocab = AutoTokenizer.from_pretrained(root / "src").get_vocab()
    words, _ = load_word_vectors(root / "wv" / "vectors.bin")
    expected = [w for w in words if "▁" + w in vocab]
    assert pairs["word"].tolist() == expected and metrics["n_pairs"] == len(expected) >= 5
    assert [vocab["▁" + w] for w in expected] == pairs["token_id"].tolist()
    assert (pairs["split"] == "heldout").sum() == metrics["n_heldout"] >= 1
    net = load_hypernetwork(out)
    assert net(torch.zeros(1, 16)).shape == (1, 32)


def test_train_hypernetwork_errors(source, tmp_path):
    root, _, _ = source
    empty = tmp_path / "empty.vec"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.vec"):
        train_hypernetwork(root / "src", empty, tmp_path / "o", {})
    unmatched = tmp_path / "other.vec"
    unmatched.write_text("2 3\nzzz 1 2 3\nyyy 4 5 6\n")
    with pytest.raises(DataError, match=r"no word of .*other\.vec"):
        train_hypernetwork(root / "src", unmatched, tmp_path / "o", {})
    bad = tmp_path / "bad.vec"
    bad.write_text("ka 1 2 3\nlo 1 x 3\n")
    with pytest.raises(DataError, match=r"bad\.vec:2"):
        train_hypernetwork(root / "src", bad, tmp_path / "o", {})
    with pytest.raises(ConfigError):
        train_hypernetwork(root / "src", unmatched, tmp_path / "o", {"stepz": 1})
    assert not (tmp_path / "o").exists()
