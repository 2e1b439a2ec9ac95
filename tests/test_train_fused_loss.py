"""The fused vocabulary projection + cross-entropy of the MLM objective (issue 21) against autograd's path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_train_helpers import LANG_PREFIX, make_model_dir

from langadapt.train.objective import LOGIT_BLOCK, DecoderBuffers, DecoderCrossEntropy, IdMaps, MLMObjective

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_function_matches_linear_plus_cross_entropy():
    torch.manual_seed(0)
    x = torch.randn(7, 16, dtype=torch.float64, requires_grad=True)
    w = torch.randn(50, 16, dtype=torch.float64, requires_grad=True)
    b = torch.randn(50, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 50, (7,))
    # float64, against autograd's own path (gradcheck would backward twice through one graph, which the
    # function refuses: its backward consumes the saved logits)
    ref = F.cross_entropy(F.linear(x, w, b), y, reduction="sum")
    grads = torch.autograd.grad(ref, (x, w, b))
    out = DecoderCrossEntropy.apply(x, w, b, y)
    mine = torch.autograd.grad(out, (x, w, b))
    assert float(out.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    for a, c in zip(grads, mine, strict=True):
        assert torch.allclose(a, c, rtol=1e-10, atol=1e-12)
    assert mine[1].is_contiguous()  # [V, d] as the weight: a tied embedding's sparse rows add in place


def test_the_blocked_log_sum_exp_spans_several_blocks(monkeypatch):
    import langadapt.train.objective as objective

    monkeypatch.setattr(objective, "LOGIT_BLOCK", 7)  # 50 rows: 8 blocks, the last one short
    torch.manual_seed(2)
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    w = (torch.randn(50, 6, dtype=torch.float64) * 3).requires_grad_()  # large logits: the running max matters
    y = torch.tensor([0, 49, 7, 13])
    ref = F.cross_entropy(x @ w.t(), y, reduction="sum")
    out = DecoderCrossEntropy.apply(x, w, None, y)
    assert float(out.detach()) == pytest.approx(float(ref.detach()), rel=1e-12)
    for a, c in zip(torch.autograd.grad(ref, (x, w)), torch.autograd.grad(out, (x, w)), strict=True):
        assert torch.allclose(a, c, rtol=1e-10, atol=1e-12)
    assert LOGIT_BLOCK == 4096


def _tied_problem(seed: int):
    torch.manual_seed(seed)
    emb = torch.nn.Embedding(30, 8, sparse=True)
    ids = torch.randint(0, 30, (5,))
    targets = torch.randint(0, 30, (5,))
    return emb, ids, targets


def _loss(emb, ids, targets, buffers):
    x = torch.tanh(emb(ids))  # the "encoder" reads the tied matrix through the lookup
    return DecoderCrossEntropy.apply(x, emb.weight, None, targets, buffers)


def test_kept_buffers_give_the_same_gradient_step_after_step_and_accumulate():
    emb, ids, targets = _tied_problem(0)
    ref = torch.nn.Embedding.from_pretrained(emb.weight.detach().clone(), freeze=False)
    buffers = DecoderBuffers()
    expected = []
    for _ in range(2):  # two micro-batches: gradients add up
        F.cross_entropy(torch.tanh(ref(ids)) @ ref.weight.t(), targets, reduction="sum").backward()
        expected.append(ref.weight.grad.clone())
    pointers = set()
    for step in range(3):  # each step: zero_grad(set_to_none=True), then two micro-batches
        emb.weight.grad = None
        _loss(emb, ids, targets, buffers).backward()  # decoder into the kept buffer, then the sparse rows
        assert not buffers.lent and emb.weight.grad.layout == torch.strided
        assert torch.allclose(emb.weight.grad, expected[0], atol=1e-6), step
        pointers.add(emb.weight.grad.data_ptr())
        _loss(emb, ids, targets, buffers).backward()
        assert torch.allclose(emb.weight.grad, expected[1], atol=1e-6), step
    assert pointers == {buffers.grad.data_ptr()}  # the same memory every step


def test_a_second_forward_before_backward_gets_its_own_logits():
    emb, ids, targets = _tied_problem(1)
    buffers = DecoderBuffers()
    first = _loss(emb, ids, targets, buffers)
    second = _loss(emb, ids.flip(0), targets, buffers)  # the kept buffer is lent to the first graph
    (first + second).backward()
    got = emb.weight.grad.clone()
    ref = torch.nn.Embedding.from_pretrained(emb.weight.detach().clone(), freeze=False)
    loss = sum(F.cross_entropy(torch.tanh(ref(i)) @ ref.weight.t(), targets, reduction="sum")
               for i in (ids, ids.flip(0)))
    loss.backward()
    assert float((first + second).detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
    assert torch.allclose(got, ref.weight.grad, atol=1e-6) and not buffers.lent


def test_an_empty_selection_gives_zero_loss_and_gradients():
    x = torch.randn(0, 4, requires_grad=True)
    w = torch.randn(9, 4, requires_grad=True)
    out = DecoderCrossEntropy.apply(x, w, None, torch.zeros(0, dtype=torch.long))
    out.backward()
    assert float(out.detach()) == 0.0 and float(w.grad.abs().sum()) == 0.0


def test_a_second_backward_through_the_same_graph_raises():
    x = torch.randn(3, 4, requires_grad=True)
    loss = DecoderCrossEntropy.apply(x, torch.randn(5, 4), None, torch.tensor([0, 1, 4]))
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


@pytest.mark.parametrize(("arch", "variant"), [("xlmr", "none"), ("bert", "none"), ("xlmr", "both")])
def test_the_objective_gives_autograds_loss_and_gradients(tmp_path, arch, variant):
    from transformers import AutoModelForMaskedLM

    model_dir = make_model_dir(tmp_path / "m", arch=arch, dropout=0.0)
    maps = IdMaps.from_inventory(sorted(LANG_PREFIX))
    torch.manual_seed(1)
    ids = torch.randint(5, 40, (3, 12))
    labels = torch.full_like(ids, -100)
    labels[:, 2::3] = ids[:, 2::3]
    lang = torch.tensor([0, 1, 0])
    results = []
    for fused in (False, True):
        model = AutoModelForMaskedLM.from_pretrained(model_dir, dtype=torch.float32)
        obj = MLMObjective(model, variant, maps if variant != "none" else None, seed=3)
        obj.fused_loss = fused
        # tied: sparse lookup rows either way; with the fused loss the decoder's gradient goes into kept buffers
        assert obj.single_process_gradients()
        assert (obj._decoder_buffers is not None) == fused
        scripts = torch.tensor([maps.script_id(c) for c in (maps.languages[0], maps.languages[1], maps.languages[0])])
        loss = obj(ids, torch.ones_like(ids), labels, lang_ids=lang, script_ids=scripts, denominator=7.0)
        loss.backward()
        results.append((float(loss.detach()), {n: p.grad.to_dense().clone() for n, p in obj.named_parameters()
                                      if p.grad is not None}))
        names = {n for n, _ in obj.named_modules()}
        assert not any(isinstance(m, torch.nn.Identity) for m in obj.modules()), names  # the head restored
    (ref_loss, ref), (loss, got) = results
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    assert ref.keys() == got.keys() and len(ref) > 10
    for n in ref:
        assert torch.allclose(ref[n], got[n], rtol=1e-4, atol=1e-6), (n, float((ref[n] - got[n]).abs().max()))


def test_bf16_autocast_keeps_autograds_path(tmp_path, monkeypatch):
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(make_model_dir(tmp_path / "m"), dtype=torch.float32)
    obj = MLMObjective(model)
    calls = []
    monkeypatch.setattr(DecoderCrossEntropy, "apply", lambda *a: calls.append(a) or torch.tensor(0.0))
    ids = torch.randint(5, 40, (2, 8))
    labels = torch.where(torch.arange(8) % 3 == 0, ids, torch.full_like(ids, -100))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = obj(ids, torch.ones_like(ids), labels)
    assert not calls and loss.dtype == torch.float32 and float(loss.detach()) > 0
    obj(ids, torch.ones_like(ids), labels)
    assert len(calls) == 1  # fp32: the fused path
