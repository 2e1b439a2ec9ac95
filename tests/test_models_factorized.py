"""Factorized embeddings E = C @ P installed into HF masked LMs, materialized back, saved beside a model."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoModelForMaskedLM,
    BertConfig,
    BertForMaskedLM,
    XLMRobertaConfig,
    XLMRobertaForMaskedLM,
)

from langadapt.core.errors import ConfigError, DataError
from langadapt.models.factorization import factorize
from langadapt.models.factorized import (
    FactorizedDecoder,
    FactorizedEmbedding,
    factorization_of,
    factorize_init,
    install_factorized,
    is_factorized,
    materialize,
    project_embeddings,
    read_factorization,
    save_factorization,
)

TINY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=24, pad_token_id=1)


def tiny(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    model = XLMRobertaForMaskedLM(XLMRobertaConfig(**TINY)) if kind == "xlmr" else BertForMaskedLM(BertConfig(**TINY))
    with torch.no_grad():
        model.get_output_embeddings().bias.normal_()
    return model.eval()


IDS = torch.tensor([[0, 5, 7, 9, 2], [0, 11, 3, 2, 1]])
MASK = (IDS != 1).long()


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS, attention_mask=MASK).logits


@pytest.mark.parametrize("kind", ["bert", "xlmr"])
def test_full_rank_install_equals_the_model_and_materialize_round_trips(kind, tmp_path):
    model = tiny(kind)
    ref = logits(model)
    c, p = factorize(model.get_input_embeddings().weight.detach(), 16)
    emb = install_factorized(model, c, p)
    assert is_factorized(model) and isinstance(model.get_output_embeddings(), FactorizedDecoder)
    assert emb.num_embeddings == 40 and emb.embedding_dim == 16 and emb.dim == 16
    assert torch.allclose(logits(model), ref, atol=1e-4)
    names = {n for n, _ in model.named_parameters()}
    assert any(n.endswith("word_embeddings.coordinates") for n in names)
    assert not any(n.endswith("word_embeddings.weight") or n.endswith("decoder.weight") for n in names)
    # one training step moves the factors (input embeddings and decoder read the same C, P)
    model.train()
    out = model(input_ids=IDS, attention_mask=MASK, labels=IDS)
    out.loss.backward()
    assert emb.coordinates.grad is not None and emb.primitives.grad.abs().sum() > 0
    with torch.no_grad():
        emb.coordinates.add_(0.01 * torch.randn_like(emb.coordinates))
    model.eval()
    trained = logits(model)
    f = factorization_of(model)
    materialize(model)
    assert not is_factorized(model) and model.config.tie_word_embeddings
    emb_w, dec = model.get_input_embeddings().weight, model.get_output_embeddings()
    assert isinstance(dec, torch.nn.Linear) and dec.weight is emb_w
    assert torch.allclose(emb_w, f.product(), atol=1e-6)
    assert torch.allclose(logits(model), trained, atol=1e-4)  # materialized == installed
    model.save_pretrained(tmp_path / "m")
    save_factorization(tmp_path / "m", f.coordinates, f.primitives, {"note": "test"})
    back = AutoModelForMaskedLM.from_pretrained(tmp_path / "m").eval()
    assert torch.allclose(logits(back), trained, atol=1e-4)
    g = read_factorization(tmp_path / "m")
    assert torch.equal(g.coordinates, f.coordinates) and torch.equal(g.primitives, f.primitives)
    assert g.meta["note"] == "test" and g.meta["dim"] == 16 and g.meta["vocab_size"] == 40
    install_factorized(back, g.coordinates, g.primitives)  # check passes: the product is the saved matrix
    assert torch.allclose(logits(back), trained, atol=1e-4)


def test_low_rank_install_checks_that_the_factors_belong_to_the_model():
    model = tiny("bert")
    c, p = factorize(model.get_input_embeddings().weight.detach(), 4)
    with pytest.raises(DataError, match="does not belong to this model"):
        install_factorized(model, c, p)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(c @ p)
    ref = logits(model)
    install_factorized(model, c, p)
    assert sum(x.numel() for x in model.get_input_embeddings().parameters()) == 40 * 4 + 4 * 16
    assert torch.allclose(logits(model), ref, atol=1e-4)
    with pytest.raises(ValueError, match="already"):
        install_factorized(model, c, p)
    with pytest.raises(DataError, match="does not fit"):
        install_factorized(tiny("bert"), c[:10], p, check=False)


def test_untied_model_is_refused():
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(**TINY, tie_word_embeddings=False))
    c, p = factorize(model.get_input_embeddings().weight.detach(), 16)
    with pytest.raises(ConfigError, match="tied"):
        install_factorized(model, c, p)


def test_factorize_init_keeps_rows_in_the_span_and_projects_the_rest():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(30, 8, generator=g)
    c, p = factorize(source, 3)
    emb = torch.cat([c[:5] @ p, torch.randn(4, 8, generator=g)])  # 5 rows in the span, 4 not
    full, f = factorize_init(source, emb, 3)
    assert torch.allclose(full[:5], emb[:5], atol=1e-5) and not torch.allclose(full[5:], emb[5:], atol=1e-2)
    assert torch.allclose(full, f.product()) and torch.allclose(f.primitives, p)
    assert torch.allclose(full[5:], emb[5:] @ p.T @ p, atol=1e-5)  # orthogonal projection
    assert 0 < f.meta["projection_error"] < 1
    assert project_embeddings(c @ p, p)[1] < 1e-6
    with pytest.raises(ConfigError, match="1..8"):
        factorize_init(source, emb, 9)


def test_random_fallback_rows_follow_the_source_coordinates_distribution():
    """HyperOFA §3.4 / OFA §3: the random fallback rows are N(E[F^s], Var[F^s]) in the coordinate space. A
    full-space draw with the source's per-dimension mean and std, projected onto the primitives, has another
    coordinate variance (here 0.29, 0.82, 0.87 of F^s's per coordinate); the redrawn rows match (1.00-1.01)."""
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.3, 0.2, 0.1, 0.1])
    basis = torch.linalg.qr(torch.randn(8, 8, generator=g))[0]  # anisotropic, rotated: dims are correlated
    source = (torch.randn(4000, 8, generator=g) * scales) @ basis.T + 1.0
    c_src, p = factorize(source, 3)
    f_src = source @ p.T  # the source coordinates F^s
    full_space = source.mean(0) + source.std(0) * torch.randn(3000, 8, generator=g)  # the `random` method
    ids = list(range(3000))
    _, projected = factorize_init(source, full_space, 3)
    _, redrawn = factorize_init(source, full_space, 3, random_ids=ids, seed=1)
    ratio_projected = projected.coordinates.var(0) / f_src.var(0)
    ratio_redrawn = redrawn.coordinates.var(0) / f_src.var(0)
    assert ratio_projected[0] < 0.5  # the deviation this fixes
    assert torch.allclose(ratio_redrawn, torch.ones(3), atol=0.1)
    assert torch.allclose(redrawn.coordinates.mean(0), f_src.mean(0), atol=0.15)
    assert redrawn.meta["random_rows"]["n"] == 3000
    again = factorize_init(source, full_space, 3, random_ids=ids, seed=1)[1]
    assert torch.equal(again.coordinates, redrawn.coordinates)  # seeded


def test_read_factorization_absent_incomplete_or_inconsistent(tmp_path):
    assert read_factorization(tmp_path) is None
    save_factorization(tmp_path, torch.zeros(5, 2), torch.zeros(2, 3))
    assert json.loads((tmp_path / "factorized.json").read_text()) == {"dim": 2, "vocab_size": 5, "hidden_size": 3}
    (tmp_path / "factorized.json").write_text(json.dumps({"dim": 3, "vocab_size": 5}))
    with pytest.raises(DataError, match="do not match"):
        read_factorization(tmp_path)
    (tmp_path / "factorized.json").unlink()
    with pytest.raises(DataError, match="go together"):
        read_factorization(tmp_path)


def test_factorized_embedding_is_an_embedding():
    c, p = torch.randn(7, 2), torch.randn(2, 5)
    emb = FactorizedEmbedding(c, p, padding_idx=0)
    ids = torch.tensor([[1, 6, 0]])
    assert torch.allclose(emb(ids), torch.nn.functional.embedding(ids, c @ p), atol=1e-6)
    assert emb.weight.shape == (7, 5) and "dim=2" in repr(emb)
    with pytest.raises(ValueError, match="do not multiply"):
        FactorizedEmbedding(c, p.T)
