"""The CPU dropout of continued pretraining (issue 21): its mask's distribution, the attention it runs, and
the switch of a model to it and back."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from test_train_helpers import make_model_dir

from langadapt.train.dropout import (
    ATTENTION,
    CpuDropout,
    attention,
    cpu_dropout,
    drop_threshold,
    dropout,
    keep_mask,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_threshold_quantises_p_to_sixteen_bits():
    assert drop_threshold(0.1) == 6554 and drop_threshold(0.0) == 0 and drop_threshold(0.5) == 32768
    with pytest.raises(ValueError, match="1.0"):
        drop_threshold(1.0)
    _, scale = keep_mask((4,), 0.1)
    assert scale == pytest.approx(65536 / (65536 - 6554), rel=1e-15)


def test_the_mask_keeps_each_element_with_probability_one_minus_p():
    torch.manual_seed(0)
    n, p = 1 << 22, 0.1
    keep, _ = keep_mask((n,), p)
    q = 1 - 6554 / 65536  # the drawn keep probability
    sigma = math.sqrt(q * (1 - q) / n)
    assert abs(float(keep.float().mean()) - q) < 5 * sigma
    # each of the four 16-bit draws of a 64-bit word is a fair draw, and neighbours are independent
    for r in range(4):
        part = keep[r::4].float()
        assert abs(float(part.mean()) - q) < 5 * math.sqrt(q * (1 - q) / len(part))
    a, b = keep[:-1].float(), keep[1:].float()
    both = float((a * b).mean())
    assert abs(both - q * q) < 5 * math.sqrt(q * q * (1 - q * q) / (n - 1))


def test_the_mask_comes_from_the_global_generator():
    torch.manual_seed(7)
    state = torch.get_rng_state()
    first, _ = keep_mask((3, 1000), 0.3)
    torch.set_rng_state(state)  # a resumed run restores this state from its checkpoint
    again, _ = keep_mask((3, 1000), 0.3)
    after, _ = keep_mask((3, 1000), 0.3)
    assert torch.equal(first, again) and not torch.equal(first, after)


def test_dropout_is_unbiased_and_its_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(1)
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x, 0.25)
    kept = y.detach() != 0
    scale = 65536 / (65536 - drop_threshold(0.25))
    assert torch.equal(y.detach()[kept], torch.full((int(kept.sum()),), scale))
    assert float(y.detach().mean()) == pytest.approx(1.0, abs=5 * math.sqrt(0.25 / 0.75 / len(x)))
    y.backward(torch.arange(len(x), dtype=torch.float32))
    assert torch.equal(x.grad, torch.where(kept, torch.arange(len(x), dtype=torch.float32) * scale, 0.0))
    z = torch.randn(5)
    assert dropout(z, 0.5, training=False) is z and dropout(z, 0.0) is z


def test_the_module_matches_nn_dropout_outside_training():
    module = CpuDropout(0.1).eval()
    z = torch.randn(4, 6)
    assert torch.equal(module(z), z)
    module.train()
    torch.manual_seed(3)
    out = module(z)
    torch.manual_seed(3)
    keep, scale = keep_mask(z.shape, 0.1)
    assert torch.equal(out, torch.where(keep, z, 0.0) * scale)


def _qkv(seed: int = 0):
    torch.manual_seed(seed)
    shape = (2, 3, 5, 4)  # batch, heads, positions, head dim
    return [torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(3)]


class _Module(torch.nn.Module):
    is_causal = False


def test_attention_is_softmax_then_the_same_mask_then_values():
    q, k, v = _qkv()
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[1, :, :, 3:] = False  # the second sequence's last two positions are padding
    module = _Module().train()
    torch.manual_seed(11)
    out, _ = attention(module, q, k, v, mask, dropout=0.2, scaling=0.5)
    torch.manual_seed(11)
    keep, scale = keep_mask((2, 3, 5, 5), 0.2)
    probs = torch.softmax((q @ k.transpose(2, 3) * 0.5).masked_fill(~mask, float("-inf")), dim=-1)
    ref = (torch.where(keep, probs, 0.0) * scale @ v).transpose(1, 2)
    assert out.shape == (2, 5, 3, 4) and torch.allclose(out, ref, atol=1e-12)
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    refs = torch.autograd.grad(ref.sum(), (q, k, v))
    for a, b in zip(grads, refs, strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    # no weight on padding keys, whatever the mask drew
    assert float(probs.detach()[1, :, :, 3:].abs().sum()) == 0.0


def test_attention_without_dropout_is_sdpa():
    q, k, v = _qkv(1)
    mask = torch.zeros(2, 1, 5, 5, dtype=torch.float64)
    mask[0, :, :, 4] = float("-inf")
    for module, p in ((_Module().eval(), 0.1), (_Module().train(), 0.0)):
        out, _ = attention(module, q, k, v, mask, dropout=p if module.training else 0.0, scaling=0.5)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.5).transpose(1, 2)
        assert torch.allclose(out, ref, atol=1e-12)


def test_a_model_switches_to_cpu_dropout_while_training_and_back(tmp_path):
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(make_model_dir(tmp_path / "m", dropout=0.1), dtype=torch.float32)
    ids = torch.randint(5, 30, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    model.eval()
    before = model(input_ids=ids, attention_mask=mask).logits
    n_dropout = sum(type(m) is torch.nn.Dropout for m in model.modules())
    with cpu_dropout(model, "cuda") as switched:  # other devices: nothing changes
        assert switched == {"dropout_modules": 0, "attention_configs": 0}
        assert model.config._attn_implementation == "sdpa"
    with cpu_dropout(model, torch.device("cpu")) as switched:
        assert switched == {"dropout_modules": n_dropout, "attention_configs": 1} and n_dropout >= 7
        assert model.config._attn_implementation == ATTENTION
        assert not any(type(m) is torch.nn.Dropout for m in model.modules())
        assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits, before, atol=1e-6)  # eval
        model.train()
        torch.manual_seed(0)
        a = model(input_ids=ids, attention_mask=mask).logits
        b = model(input_ids=ids, attention_mask=mask).logits
        assert not torch.allclose(a, b)  # dropout draws fresh masks
        model.save_pretrained(tmp_path / "inside")  # an export in the middle of a run
    saved = json.loads((tmp_path / "inside" / "config.json").read_text())
    assert ATTENTION not in json.dumps(saved)
    assert model.config._attn_implementation == "sdpa"
    assert sum(type(m) is torch.nn.Dropout for m in model.modules()) == n_dropout
    assert all(m.training for m in model.modules())  # the restored modules follow the model's mode
    model.eval()
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, before)


def test_pretraining_draws_every_dropout_mask_here(tmp_path, monkeypatch):
    """Continued pretraining on CPU: every dropout site of the model (embeddings, and per layer the attention
    probabilities, the attention output and the feed-forward output) draws its mask with keep_mask, once per
    forward; the saved model is a stock one."""
    from test_train_helpers import LANG_PREFIX, repetitive, write_corpus

    import langadapt.train.dropout as mod
    from langadapt.train.mlm import pretrain

    model = make_model_dir(tmp_path / "m", dropout=0.1)  # 2 layers
    corpora = {lang: write_corpus(tmp_path / f"{lang}.parquet", repetitive(lang, 30)) for lang in LANG_PREFIX}
    shapes = []
    real = mod.keep_mask
    monkeypatch.setattr(mod, "keep_mask", lambda shape, *a, **k: shapes.append(tuple(shape)) or real(shape, *a, **k))
    cfg = dict(steps=3, batch_size=4, grad_accum=2, seq_len=24, lr=1e-3, warmup_steps=0, checkpoint_every=100,
               log_every=1, seed=1, device="cpu")
    pretrain(model, corpora, tmp_path / "out", tmp_path / "run", cfg)
    assert len(shapes) == 3 * 2 * (1 + 2 * 3)  # steps x micro-batches x dropout sites
    assert sum(len(s) == 4 for s in shapes) == 3 * 2 * 2  # attention probabilities [batch, heads, q, k]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert ATTENTION not in json.dumps(config)
