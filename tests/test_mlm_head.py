"""Training a new MLM head on a frozen body (issue 19 §1): the head learns, the body and the tied decoder
do not move, the held-out loss is reported per language, settings are validated."""

from __future__ import annotations

import math

import pytest
import torch
from test_train_helpers import LANG_PREFIX, make_model_dir, repetitive, sentences, write_corpus

from langadapt.core.errors import ConfigError, DataError
from langadapt.data.corpus import SplitTexts
from langadapt.models.mlm_head import head_settings, mask_tokens, train_mlm_head


def _tiny(tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    path = make_model_dir(tmp_path / "m", arch="bert", dropout=0.0)
    return AutoModelForMaskedLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_head_training_learns_on_held_out_sentences_and_leaves_the_body_alone(tmp_path) -> None:
    model, tok = _tiny(tmp_path)
    body = {k: v.clone() for k, v in model.base_model.state_dict().items()}
    embeddings = model.get_input_embeddings().weight.clone()
    # predictable text (the word list in order), train and dev from the same process, per language
    train = {lang: repetitive(lang, 120) for lang in LANG_PREFIX}
    held = {lang: repetitive(lang, 40)[::-1] for lang in LANG_PREFIX}
    rec = train_mlm_head(model, tok, train, held, {"epochs": 100, "lr": 1e-2, "batch_positions": 64})
    assert rec["ln_vocab"] == pytest.approx(math.log(len(tok)))  # 41 pieces: 5 specials + 3 x 12 words
    for lang in LANG_PREFIX:  # chance before (~ln V); after, at least "which language" is learnt: a random
        # 2-layer body of width 32 carries little more, and knowing the language leaves ln 12 = 2.48 nats
        assert rec["held_out_loss_before"][lang] > rec["ln_vocab"] - 0.5
        assert rec["held_out_loss"][lang] < rec["held_out_loss_before"][lang] - 1.0
        assert rec["held_out_loss"][lang] < math.log(12) + 0.3
    assert rec["epochs_loss"][-1] < rec["epochs_loss"][0]
    assert all(torch.equal(v, model.base_model.state_dict()[k]) for k, v in body.items())
    assert torch.equal(model.get_input_embeddings().weight, embeddings)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied
    assert all(p.requires_grad for p in model.parameters())  # restored


def test_head_training_is_deterministic_and_reads_corpus_splits(tmp_path) -> None:
    paths = {lang: write_corpus(tmp_path / f"{lang}.parquet", sentences(lang, 80, seed=k),
                                ["dev" if i % 4 == 0 else "train" for i in range(80)])
             for k, lang in enumerate(LANG_PREFIX)}  # fmt: skip
    runs = []
    for _ in range(2):
        model, tok = _tiny(tmp_path)
        rec = train_mlm_head(
            model,
            tok,
            {k: SplitTexts(p, "train") for k, p in paths.items()},
            {k: SplitTexts(p, "dev") for k, p in paths.items()},
            {"epochs": 2, "sentences": 30},
        )
        runs.append((rec["held_out_loss"], model.cls.predictions.transform.dense.weight.clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert set(runs[0][0]) == set(LANG_PREFIX)


def test_masking_is_berts_and_never_touches_specials() -> None:
    ids = torch.arange(5, 5 + 2000).reshape(20, 100)
    never = torch.zeros_like(ids, dtype=torch.bool)
    never[:, 0] = True
    inputs, labels = mask_tokens(ids, never, 4, torch.arange(5, 50), torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert abs(chosen.float().mean().item() - 0.15 * 99 / 100) < 0.02 and not chosen[:, 0].any()
    assert abs((inputs[chosen] == 4).float().mean().item() - 0.8) < 0.05  # 80% <mask>
    assert torch.equal(labels[chosen], ids[chosen])


def test_settings_and_input_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"unknown head_training key\(s\) \['steps'\]"):
        head_settings({"steps": 3})
    with pytest.raises(ConfigError, match="head_training.lr"):
        head_settings({"lr": 0})
    model, tok = _tiny(tmp_path)
    with pytest.raises(DataError, match="no corpora"):
        train_mlm_head(model, tok, {}, {})
