"""HyperOFA's hypernetwork (langadapt.hypernet.training): networks, matching, augmentation, loss, training, outputs."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from init_helpers import unigram
from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

from langadapt.config import SCHEMA_PATH
from langadapt.core.errors import ConfigError, DataError
from langadapt.hypernet.sets import choose_words, collate, hyperofa_loss, piece_word_sets, predict
from langadapt.hypernet.settings import DEFAULT_CFG, resolve_cfg
from langadapt.hypernet.training import (
    HYPERNETS,
    build_hypernetwork,
    fit_hypernetwork,
    load_hypernetwork,
    load_trained_hypernet,
    train_hypernetwork,
)
from langadapt.vectors.base import save_word_vectors
from langadapt.vectors.fasttext import load_fasttext, train_fasttext

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"dim": 12, "hidden": 16, "layers": 1, "dropout": 0.0, "batch_size": 32, "lr": 5e-3, "patience": 0, "device": "cpu"}


# ---------------------------------------------------------------------------------------------- config
def test_resolve_cfg_has_the_paper_defaults_and_rejects_bad_values():
    cfg = resolve_cfg(None)
    assert (cfg["kind"], cfg["lambda"], cfg["temperature"], cfg["dropout"], cfg["max_set"]) == (
        "bilstm", 0.1, 0.25, 0.4, 256)
    assert (cfg["augment_prob"], cfg["augment_min_fraction"], cfg["lr"]) == (0.5, 0.5, 1e-4)
    for bad, match in [({"lamda": 0.2}, "lamda"), ({"kind": "gru"}, "unknown hypernetwork 'gru'"),
                       ({"lambda": 2}, "lambda"), ({"epochs": 0}, "epochs"), ({"hidden": True}, "hidden"),
                       ({"match": "fuzzy"}, "match"), ({"coordinates": "v"}, "coordinates"),
                       ({"kind": "set_transformer", "hidden": 10, "heads": 4}, "multiple of heads")]:
        with pytest.raises(ConfigError, match=match):
            resolve_cfg(bad)
    assert {"mlp", "bilstm", "set_transformer"} <= set(HYPERNETS)


def test_schema_lists_exactly_the_training_keys():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["hypernetwork"]["properties"]["train"]
    assert set(schema["properties"]) == set(DEFAULT_CFG)
    assert schema["properties"]["kind"]["enum"] == ["bilstm", "mlp", "set_transformer"] == sorted(HYPERNETS)
    assert DEFAULT_CFG["dim"] == 100  # langadapt.config._check_hypernet_recipes assumes it
    resolve_cfg({k: v for k, v in DEFAULT_CFG.items()})


# -------------------------------------------------------------------------------------------- networks
@pytest.mark.parametrize("kind", ["mlp", "bilstm", "set_transformer"])
def test_set_networks_shapes_masks_and_order(kind):
    torch.manual_seed(0)
    net, params = build_hypernetwork(kind, 6, 5, resolve_cfg({"kind": kind, "hidden": 8, "heads": 2,
                                                              "layers": 2, "dropout": 0.0}))
    assert params["d_in"] == 6 and params["d_out"] == 5 and ("heads" in params) == (kind == "set_transformer")
    net.eval()
    v = torch.randn(3, 4, 6)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    out = net(v, mask)
    assert out.shape == (3, 5)
    garbage = v.clone()
    garbage[~mask] = 100.0  # padding never leaks into the result
    torch.testing.assert_close(net(garbage, mask), out)
    torch.testing.assert_close(net(v[1:2, :2]), out[1:2], atol=1e-5, rtol=1e-5)  # no mask = all real
    torch.testing.assert_close(net(v[2:3, 0]), out[2:3], atol=1e-5, rtol=1e-5)  # [B, d] = sets of one
    shuffled = net(v[:, [2, 0, 3, 1]], mask[:1].expand(3, -1))
    if kind == "bilstm":  # order-sensitive by construction (HyperOFA §3.4: trained on shuffled sets instead)
        assert not torch.allclose(shuffled[0], out[0], atol=1e-4)
        with pytest.raises(ValueError, match="left-aligned"):
            net(v, torch.tensor([[0, 1, 1, 1]] * 3, dtype=torch.bool))
    else:  # permutation-invariant
        torch.testing.assert_close(shuffled[0], out[0], atol=1e-5, rtol=1e-5)


def test_bilstm_has_the_papers_size():
    # App. Table 6 / Table 1: HN-R-100 (2 layers, hidden 800, D' 100) has 22M parameters, HN-X-400 (4 layers,
    # hidden 1600, D' 400) 210M, with ColexNet+'s 200-dimensional input vectors
    for layers, hidden, dim, millions in [(2, 800, 100, 22), (4, 1600, 400, 210)]:
        net, _ = build_hypernetwork("bilstm", 200, dim, resolve_cfg({"layers": layers, "hidden": hidden}))
        assert round(sum(p.numel() for p in net.parameters()) / 1e6) in (millions - 1, millions, millions + 1)


# ------------------------------------------------------------------------------------ sets and batches
def test_augmentation_shuffles_and_keeps_at_least_half_of_each_set():
    cfg = resolve_cfg({"max_set": 64})
    rng = np.random.default_rng(0)
    cut = reordered = 0
    for n in list(range(1, 65)) * 8:
        members = np.arange(10 * n, 11 * n)
        chosen = choose_words(members, cfg, rng)
        assert len(chosen) >= math.ceil(n / 2) and len(set(chosen)) == len(chosen)
        assert set(chosen) <= set(members)
        if n <= cfg["augment_min_size"]:
            assert sorted(chosen) == list(members)  # small sets are only shuffled
        cut += len(chosen) < n
        reordered += len(chosen) == n and list(chosen) != list(members)
    assert 0.3 < cut / (64 * 8) < 0.6 and reordered > 100  # about half of the sets are cut (App. A.3)
    big = np.arange(1000)
    assert len(choose_words(big, cfg, rng)) == 64  # at most max_set words
    fixed = choose_words(big, cfg, None)  # evaluation: deterministic, evenly thinned
    assert len(fixed) == 64 and fixed[0] == 0 and fixed[-1] == 999 and (np.diff(fixed) > 0).all()
    np.testing.assert_array_equal(choose_words(big[:10], cfg, None), big[:10])


def test_collate_pads_left_aligned():
    idx, mask = collate([np.array([4, 2]), np.array([7]), np.array([1, 2, 3])])
    assert idx.tolist() == [[4, 2, 0], [7, 0, 0], [1, 2, 3]]
    assert mask.tolist() == [[True, True, False], [True, False, False], [True, True, True]]


# ------------------------------------------------------------------------------------------------ loss
def test_hyperofa_loss():
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss, l_c, l_1 = hyperofa_loss(t.clone(), t, lam=0.1, tau=0.25)
    assert float(l_1) == 0.0
    expected_c = -np.log(np.exp(4) / (np.exp(4) + np.exp(0)))  # cos 1 vs 0, over tau = 0.25
    assert float(l_c) == pytest.approx(expected_c, rel=1e-5)
    assert float(loss) == pytest.approx(0.1 * expected_c, rel=1e-5)
    _, _, l_1 = hyperofa_loss(t + 0.5, t, lam=0.1, tau=0.25)
    assert float(l_1) == pytest.approx(1.0)  # normalized: mean |error| 0.5 / mean |target| 0.5
    _, _, l_1_scaled = hyperofa_loss(10 * (t + 0.5), 10 * t, lam=0.1, tau=0.25)
    assert float(l_1_scaled) == pytest.approx(1.0)  # scale-free


# -------------------------------------------------------------------------------------------- training
def set_toy(n: int = 300, d_in: int = 12, d_out: int = 8, seed: int = 0):
    """Sets of noisy copies of a latent z_k; target = z_k W + offset (learnable from the set's mean)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d_in, generator=g)
    y = z @ (torch.randn(d_in, d_out, generator=g) / d_in**0.5) + 0.6 * torch.randn(d_out, generator=g)
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, n)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    vectors = z.repeat_interleave(torch.from_numpy(sizes), dim=0)
    vectors = vectors + 0.3 * torch.randn(vectors.shape, generator=g)
    return vectors, [np.arange(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)], y


@pytest.mark.parametrize("kind", ["bilstm", "mlp"])
def test_fit_learns_a_mapping_and_beats_the_mean_baseline(kind):
    vectors, sets, y = set_toy()
    res = fit_hypernetwork(vectors, sets, y, {**SMALL, "kind": kind, "epochs": 12})
    m = res.metrics
    assert (m["n_pairs"], m["n_train"], m["n_heldout"], m["epochs_run"]) == (300, 270, 30, 12)
    assert [r["epoch"] for r in res.rows] == list(range(1, 13))
    assert np.mean([r["loss"] for r in res.rows[-3:]]) < 0.8 * np.mean([r["loss"] for r in res.rows[:2]])
    assert m["heldout_cosine"] > m["baseline_cosine"] + 0.15 and m["heldout_cosine"] > 0.85
    assert res.heldout_pred.shape == (30, 8) and not res.net.training
    torch.testing.assert_close(predict(res.net, vectors, [sets[i] for i in res.heldout_idx], res_cfg(kind)),
                               res.heldout_pred)
    if kind == "bilstm":  # same seed, same result
        again = fit_hypernetwork(vectors, sets, y, {**SMALL, "kind": kind, "epochs": 12})
        assert again.rows[-1]["loss"] == res.rows[-1]["loss"]


def res_cfg(kind: str) -> dict:
    return resolve_cfg({**SMALL, "kind": kind})


def test_fit_with_patience_keeps_the_best_epoch():
    vectors, sets, y = set_toy(n=120)
    res = fit_hypernetwork(vectors, sets, y, {**SMALL, "kind": "mlp", "epochs": 30, "patience": 2,
                                              "lr": 0.3})  # too high a learning rate: held-out loss jumps
    best = min(res.rows, key=lambda r: r["heldout_loss"])
    assert res.metrics["best_epoch"] == best["epoch"] and res.metrics["epochs_run"] <= 30
    assert res.metrics["epochs_run"] - best["epoch"] <= 2
    assert res.metrics["heldout_cosine"] == pytest.approx(best["heldout_cosine"], abs=1e-5)


def test_fit_rejects_too_few_pairs():
    with pytest.raises(DataError, match="at least 2 matched pieces"):
        fit_hypernetwork(torch.zeros(1, 3), [np.array([0])], torch.zeros(1, 2), SMALL)


# -------------------------------------------------------------------------------------------- matching


def test_piece_word_sets_tokenize_and_substring():
    tok = unigram(["▁The", "▁the", "▁ho", "use", "▁house", "boot", "▁", "s", "zz"])
    v = tok.get_vocab()
    words = ["the", "house", "houses", "$haus$", "hausboot", "x"]
    sets = piece_word_sets(words, tok)
    got = {tok.convert_ids_to_tokens(int(i)): sets.words_of(k).tolist() for k, i in enumerate(sets.ids)}
    assert got["▁The"] == [0] and got["▁the"] == [0]  # capitalized variant: ▁The matches "the"
    assert got["▁house"] == [1, 2] and got["s"] == [2, 3, 4] and "zz" not in got  # ha(u)s: <unk> + s
    assert got["boot"] == [4]
    assert v["<unk>"] not in sets.ids  # "x", "haus": unknown characters, specials never match
    assert list(sets.ids) == sorted(sets.ids) and sets.sizes().sum() == len(sets.members)
    only = piece_word_sets(words, tok, pieces=[v["▁house"], v["zz"], v["<s>"]])
    assert only.ids.tolist() == [v["▁house"]]
    sub = piece_word_sets(words, tok, match="substring", boundary_marker="$")
    got = {tok.convert_ids_to_tokens(int(i)): sub.words_of(k).tolist() for k, i in enumerate(sub.ids)}
    assert got["use"] == [1, 2] and got["▁ho"] == [1, 2] and got["boot"] == [4] and got["s"] == [1, 2, 3, 4]
    assert got["▁The"] == [0]  # case-folded
    with pytest.raises(ConfigError, match="unknown mode"):
        piece_word_sets(words, tok, match="fuzzy")


# ------------------------------------------------------------------------------------ train_hypernetwork
SYL = ["ka", "lo", "mi", "ne", "tu", "ra", "so"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A source model (hand-made Unigram over syllables, random XLM-R) and word vectors built from the same
    syllables."""
    root = tmp_path_factory.mktemp("hn")
    pieces = [f"▁{s}" for s in SYL] + SYL + ["▁kalo", "▁mine", "tura", "qq"]
    tok = unigram(pieces)
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=len(tok), hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32, max_position_embeddings=40, pad_token_id=1)
    XLMRobertaForMaskedLM(cfg).save_pretrained(root / "src")
    tok.save_pretrained(root / "src")
    rng = random.Random(0)
    words = sorted({"".join(rng.choices(SYL, k=rng.randint(1, 3))) for _ in range(200)})
    syl_vec = {s: np.random.default_rng(i).normal(size=10) for i, s in enumerate(SYL)}
    vecs = np.stack([sum(syl_vec[w[i:i + 2]] for i in range(0, len(w), 2)) for w in words])
    (root / "wv").mkdir()
    save_word_vectors(root / "wv", words, ["xxx_Latn"] * len(words), vecs, {"kind": "test"})
    return root, words


def test_train_hypernetwork_writes_a_loadable_directory(world, tmp_path):
    root, words = world
    out = tmp_path / "hn"
    cfg = {**SMALL, "dim": 12, "epochs": 3, "batch_size": 8}
    metrics = train_hypernetwork(root / "src", root / "wv", out, cfg, word_vectors_name="toy")
    assert {p.name for p in out.iterdir()} == {"hypernet.safetensors", "factorization.safetensors",
                                                "hypernet.json", "loss.csv", "pieces.csv"}
    meta = json.loads((out / "hypernet.json").read_text())
    assert meta["metrics"] == metrics and meta["cfg"]["lambda"] == 0.1 and meta["kind"] == "bilstm"
    assert meta["model_params"]["d_in"] == 10 and meta["model_params"]["d_out"] == 12
    assert meta["word_vectors"]["name"] == "toy" and meta["word_vectors"]["n"] == len(words)
    assert meta["dim"] == 12 and meta["hidden_size"] == 24
    for key in ("heldout_cosine", "baseline_cosine", "heldout_cosine_embedding", "baseline_cosine_embedding",
                "factorization_cosine", "train_seconds", "coverage"):
        assert math.isfinite(metrics[key])
    loss = pd.read_csv(out / "loss.csv")
    assert loss["epoch"].tolist() == [1, 2, 3] and {"loss", "contrastive", "l1", "heldout_cosine"} <= set(loss)
    pieces = pd.read_csv(out / "pieces.csv", keep_default_na=False)
    assert len(pieces) == metrics["n_pairs"] and (pieces["split"] == "heldout").sum() == metrics["n_heldout"]
    assert "qq" not in set(pieces["piece"]) and "▁kalo" in set(pieces["piece"]) and (pieces["n_words"] > 0).all()
    assert not ({"<s>", "<pad>", "</s>", "<unk>", "<mask>"} & set(pieces["piece"]))
    trained = load_trained_hypernet(out)
    assert trained.primitives.shape == (12, 24) and isinstance(load_hypernetwork(out), HYPERNETS.get("bilstm"))
    wv = np.load(root / "wv" / "vectors.npy")
    rows = trained.embeddings(torch.from_numpy(wv), [np.array([0, 1]), np.array([2])])
    assert rows.shape == (2, 24)


def test_train_hypernetwork_bad_inputs(world, tmp_path):
    root, _ = world
    empty = tmp_path / "empty"
    empty.mkdir()
    np.save(empty / "vectors.npy", np.zeros((0, 4), np.float32))
    (empty / "words.tsv").write_text("word\tlang\n")
    with pytest.raises(DataError, match="empty"):
        train_hypernetwork(root / "src", empty, tmp_path / "o", SMALL)
    other = tmp_path / "other"
    other.mkdir()
    save_word_vectors(other, ["zzz", "yyy"], ["", ""], np.ones((2, 3)), {"kind": "test"})
    with pytest.raises(DataError, match=r"0 of the \d+ source pieces .* match a word of .*other"):
        train_hypernetwork(root / "src", other, tmp_path / "o", SMALL)
    with pytest.raises(DataError, match="does not exist"):
        train_hypernetwork(tmp_path / "nope", root / "wv", tmp_path / "o", SMALL)
    with pytest.raises(ConfigError, match="stepz"):
        train_hypernetwork(root / "src", root / "wv", tmp_path / "o", {"stepz": 1})
    with pytest.raises(ConfigError, match="factorization dimension"):
        train_hypernetwork(root / "src", root / "wv", tmp_path / "o", {**SMALL, "dim": 500})
    with pytest.raises(DataError, match="not a hypernetwork directory"):
        load_trained_hypernet(tmp_path)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------- fastText (corpus vectors)
def test_build_word_vectors_is_reproducible(tmp_path):
    rng = random.Random(0)
    words = sorted({"".join(rng.choices(SYL, k=rng.randint(1, 3))) for _ in range(300)})
    texts = [" ".join(rng.choices(words, k=rng.randint(4, 10))) for _ in range(400)]
    info = train_fasttext(texts, tmp_path / "a.bin", dim=16, epochs=2, min_count=1)
    w, vecs = load_fasttext(tmp_path / "a.bin")
    assert info == {"words": len(w), "dim": 16} and vecs.shape == (len(w), 16)
    train_fasttext(texts, tmp_path / "b.bin", dim=16, epochs=2, min_count=1)
    np.testing.assert_array_equal(load_fasttext(tmp_path / "b.bin")[1], vecs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]  # no temporary leftovers
    with pytest.raises(DataError, match="no text"):
        train_fasttext(["", " "], tmp_path / "x.bin")
