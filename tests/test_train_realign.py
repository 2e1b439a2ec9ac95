"""Sentence-level contrastive realignment (realignment paper, Eq. 1) on a tiny random model."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_helpers import make_model_dir, make_tokenizer, write_parallel

from langadapt.core.errors import ConfigError, DataError
from langadapt.realign.trainer import realign, realignment_loss, sentence_mean
from langadapt.train.checkpoint import latest_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("realign")
    return make_model_dir(root / "model"), write_parallel(root / "parallel.parquet", ["deu_Latn", "fra_Latn"], 60)


def _cfg(**kw):
    cfg = dict(steps=12, batch_size=4, max_length=16, lr=1e-3, checkpoint_every=4, log_every=1, seed=3,
               device="cpu")
    cfg.update(kw)
    return cfg


def _losses(path: Path) -> list[float]:
    with open(path) as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_loss_equals_hand_computed_value():
    # H = {h1, h2, h~1, h~2}; T = 0.1. Cosine similarities of the toy vectors:
    #   h1=(1,0) h2=(0,1) h~1=(3,4) h~2=(0,2)
    #   cos(h1,h2)=0  cos(h1,h~1)=0.6  cos(h1,h~2)=0  cos(h2,h~1)=0.8  cos(h2,h~2)=1  cos(h~1,h~2)=0.8
    src = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tgt = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    e = math.exp
    terms = [
        math.log(e(6) / (e(0) + e(6) + e(0))),  # h1:  aligned h~1 (0.6); others h2 (0), h~1 (0.6), h~2 (0)
        math.log(e(10) / (e(0) + e(8) + e(10))),  # h2:  aligned h~2 (1);  others h1 (0), h~1 (0.8), h~2 (1)
        math.log(e(6) / (e(6) + e(8) + e(8))),  # h~1: aligned h1 (0.6); others h1 (0.6), h2 (0.8), h~2 (0.8)
        math.log(e(10) / (e(0) + e(10) + e(8))),  # h~2: aligned h2 (1);  others h1 (0), h2 (1), h~1 (0.8)
    ]
    expected = -sum(terms) / 4  # -1/(2B) * sum over all 2B vectors of H
    assert realignment_loss(src, tgt, 0.1).item() == pytest.approx(expected, rel=1e-5)
    # = -(1/4) * [(6 - ln(2 + e^6)) + 2 * (10 - ln(1 + e^8 + e^10)) + (6 - ln(e^6 + 2 e^8))]
    #   = -(1/4) * [-0.00492 - 2 * 0.12697 - 2.75862] = 0.75437
    assert expected == pytest.approx(0.75437, abs=1e-4)


def test_sentence_mean_covers_real_tokens_only():
    hidden = torch.tensor([
        [[100.0, 100.0], [1.0, 2.0], [3.0, 4.0], [-100.0, 7.0]],  # <s> a b </s>
        [[100.0, 100.0], [5.0, 6.0], [-100.0, 7.0], [55.0, 55.0]],  # <s> c </s> <pad>
    ])
    attention = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    special = torch.tensor([[1, 0, 0, 1], [1, 0, 1, 1]])
    out = sentence_mean(hidden, attention, special)
    assert torch.allclose(out, torch.tensor([[2.0, 3.0], [5.0, 6.0]]))
    # a pad position not flagged as special is still excluded by the attention mask
    out = sentence_mean(hidden, attention, torch.tensor([[1, 0, 0, 1], [1, 0, 1, 0]]))
    assert torch.allclose(out[1], torch.tensor([5.0, 6.0]))


def test_sentence_mean_with_the_tokenizer_masks():
    tok = make_tokenizer()
    texts = ["cat dog sun moon tree river stone", "decat"]
    enc = tok(texts, padding=True, truncation=True, max_length=6, return_special_tokens_mask=True,
              return_tensors="pt")
    hidden = enc["input_ids"].float().unsqueeze(-1)  # the hidden state of a token is its id
    out = sentence_mean(hidden, enc["attention_mask"], enc["special_tokens_mask"])
    ids0 = tok(texts[0], add_special_tokens=False)["input_ids"][:4]  # 6 - <s> - </s> after truncation
    ids1 = tok(texts[1], add_special_tokens=False)["input_ids"]
    assert out[:, 0].tolist() == pytest.approx([sum(ids0) / 4, sum(ids1) / 1])


def test_loss_decreases_and_output_is_a_full_mlm_model(world, tmp_path):
    model, parallel = world
    res = realign(model, parallel, tmp_path / "out", tmp_path / "run",
                  _cfg(steps=40, batch_size=8, lr=3e-3, log_every=10, sampling="by_language"),
                  {"recipe": "tiny"})
    losses = _losses(tmp_path / "run" / "loss.csv")
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.2, losses
    assert res["steps"] == 40 and res["tokens"] > 0
    prov = json.loads((tmp_path / "out" / "langadapt.json").read_text())
    assert prov["recipe"] == "tiny" and prov["training"]["languages"] == ["deu_Latn", "fra_Latn"]
    assert prov["training"]["train_pairs"] == {"deu_Latn": 54, "fra_Latn": 54}  # dev rows excluded
    from transformers import AutoModelForMaskedLM
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path / "out")).__name__ == "XLMRobertaForMaskedLM"
    assert (tmp_path / "out" / "tokenizer.json").exists() and (tmp_path / "out" / "loss.csv").exists()


def test_interrupted_and_resumed_run_is_identical(world, tmp_path):
    model, parallel = world
    realign(model, parallel, tmp_path / "full", tmp_path / "run_full", _cfg(layer=1))

    def crash(step: int) -> None:
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        realign(model, parallel, tmp_path / "res", tmp_path / "run", _cfg(layer=1), callback=crash)
    assert latest_checkpoint(tmp_path / "run").name == "step-00000004"
    res = realign(model, parallel, tmp_path / "res", tmp_path / "run", _cfg(layer=1))
    assert res["resumed_from_step"] == 4
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "res" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _losses(tmp_path / "run" / "loss.csv") == _losses(tmp_path / "run_full" / "loss.csv")


def test_language_subset_and_bad_inputs(world, tmp_path):
    model, parallel = world
    realign(model, parallel, tmp_path / "out", tmp_path / "run", _cfg(steps=2, languages=["fra_Latn"]))
    prov = json.loads((tmp_path / "out" / "langadapt.json").read_text())
    assert prov["training"]["train_pairs"] == {"fra_Latn": 54}
    with pytest.raises(DataError, match="swh_Latn"):
        realign(model, parallel, tmp_path / "o", tmp_path / "r", _cfg(languages=["swh_Latn"]))
    with pytest.raises(ConfigError, match="temp"):
        realign(model, parallel, tmp_path / "o", tmp_path / "r", {"temp": 0.1})
    with pytest.raises(ConfigError, match="sampling"):
        realign(model, parallel, tmp_path / "o", tmp_path / "r", _cfg(sampling="by_verse"))
    with pytest.raises(ConfigError, match="layer"):
        realign(model, parallel, tmp_path / "o", tmp_path / "r", _cfg(layer=9))
    with pytest.raises(DataError, match="nothing.parquet"):
        realign(model, tmp_path / "nothing.parquet", tmp_path / "o", tmp_path / "r", _cfg())
    assert not (tmp_path / "o").exists()


def test_bert_architecture(tmp_path):
    """mBERT is one of the realignment paper's two models (§3.2): the same contrastive training works on a BERT
    encoder (the loss falls) and writes a BERT MLM."""
    model = make_model_dir(tmp_path / "bert", arch="bert")
    parallel = write_parallel(tmp_path / "p.parquet", ["deu_Latn"], 20)
    res = realign(model, parallel, tmp_path / "out", tmp_path / "run",
                  _cfg(steps=30, batch_size=8, lr=3e-3, log_every=10))
    losses = _losses(tmp_path / "run" / "loss.csv")
    assert res["steps"] == 30 and math.isfinite(res["final_loss"])
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.2, losses
    from transformers import AutoModelForMaskedLM
    assert type(AutoModelForMaskedLM.from_pretrained(tmp_path / "out")).__name__ == "BertForMaskedLM"
