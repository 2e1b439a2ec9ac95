"""A working masked-LM head for an encoder that ships without one (issue 19 §1).

multilingual-e5-small is a retrieval-tuned encoder: its checkpoint has no MLM head, and a head fitted by
ridge regression from hidden states to input embeddings (`fit_mlm_head`) still scores held-out masked
tokens at chance (10.6-11.5 nats on the trimmed 72,774-piece vocabulary, ln V = 11.2), so every pretraining
recipe would start from a chance-level head. :func:`train_mlm_head` trains the head — the transform (dense +
LayerNorm) and the output bias; the decoder stays tied to the frozen input embeddings — with cross-entropy on
hidden states of masked sentences cached once from the frozen body, and reports the held-out masked-token
loss per language before and after (on each language's dev sentences, masks seeded per language, so the
numbers are comparable across runs).

Masking is BERT's (:func:`mask_tokens`, 15%: 80% ``<mask>``, 10% random, 10% unchanged), the same function
continued pretraining uses (`langadapt.train.mlm` imports it from here).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from langadapt.core.checks import check_int, check_number
from langadapt.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Defaults (issue 19 §1 measured 15 languages x 250 verses, 3 epochs, ~2.5 min on 2 cores: 5.6-6.5 nats).
HEAD_TRAIN_DEFAULTS: dict[str, Any] = {
    "sentences": 250,  # training sentences per language (train split)
    "held_out_sentences": 200,  # dev sentences per language for the reported loss
    "epochs": 3,
    "lr": 1e-3,  # Adam
    "batch_positions": 512,  # masked positions per step
    "seq_len": 128,
    "seed": 0,
}


def mask_tokens(
    input_ids: torch.Tensor,
    never_mask: torch.Tensor,
    mask_id: int,
    candidates: torch.Tensor,
    generator: torch.Generator,
    probability: float = 0.15,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: select `probability` of the maskable positions; of those, ratios[0] -> ``<mask>``,
    ratios[1] -> a random token from `candidates`, the rest unchanged.

    `never_mask` is True at special tokens and padding. Returns (inputs, labels) with labels -100 at
    unselected positions. Draws a fixed amount of randomness from `generator` per call (exact resume).
    """
    probs = torch.full(input_ids.shape, probability)
    probs.masked_fill_(never_mask, 0.0)
    selected = torch.bernoulli(probs, generator=generator).bool()
    u = torch.rand(input_ids.shape, generator=generator)
    random_ids = candidates[torch.randint(len(candidates), input_ids.shape, generator=generator)]
    to_mask = selected & (u < ratios[0])
    to_random = selected & (u >= ratios[0]) & (u < ratios[0] + ratios[1])
    inputs = input_ids.clone()
    inputs[to_mask] = mask_id
    inputs[to_random] = random_ids[to_random]
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, -100))
    return inputs, labels


def mask_candidates(tokenizer: Any, vocab_size: int) -> torch.Tensor:
    """Ids a random replacement of :func:`mask_tokens` draws from: the first `vocab_size` ids, specials out."""
    special = set(tokenizer.all_special_ids)
    return torch.tensor([i for i in range(vocab_size) if i not in special], dtype=torch.long)


def head_settings(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate ``head_training`` (keys :data:`HEAD_TRAIN_DEFAULTS`); ConfigError names key and value."""
    cfg = dict(params or {})
    if unknown := sorted(set(cfg) - set(HEAD_TRAIN_DEFAULTS)):
        raise ConfigError(f"unknown head_training key(s) {unknown}; known: {sorted(HEAD_TRAIN_DEFAULTS)}")
    cfg = {**HEAD_TRAIN_DEFAULTS, **cfg}
    for key in ("sentences", "held_out_sentences", "epochs", "batch_positions"):
        check_int(cfg[key], f"head_training.{key}", low=1)
    check_int(cfg["seq_len"], "head_training.seq_len", low=3)
    check_int(cfg["seed"], "head_training.seed", low=0)
    check_number(cfg["lr"], "head_training.lr", low=0.0, low_open=True)
    return cfg


def _head_module(model: torch.nn.Module) -> torch.nn.Module:
    """The module mapping last hidden states to logits (BERT ``cls``, XLM-R ``lm_head``)."""
    head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
    if head is None:
        raise TypeError(f"{type(model).__name__} has no BERT/XLM-R MLM head")
    return head


def _trainable_head_params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Head parameters except the decoder weight tied to the input embeddings."""
    tied = model.get_input_embeddings().weight
    return [p for p in _head_module(model).parameters() if p is not tied]


@torch.no_grad()
def masked_states(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    seq_len: int,
    generator: torch.Generator,
    batch: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states, labels) at the masked positions of `texts`, from the body in eval mode."""
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    candidates = mask_candidates(tokenizer, model.get_input_embeddings().weight.shape[0])
    hs, ys = [], []
    # batches of similar length (shortest first): padding to a batch's longest sentence would otherwise triple
    # the body's work on Bible verses (~40 pieces, up to seq_len)
    lengths = [len(x) for x in tokenizer(list(texts), truncation=True, max_length=seq_len)["input_ids"]]
    texts = [texts[i] for i in sorted(range(len(texts)), key=lengths.__getitem__)]
    for i in range(0, len(texts), batch):
        enc = tokenizer(list(texts[i : i + batch]), truncation=True, max_length=seq_len, padding=True,
                        return_tensors="pt")  # fmt: skip
        ids, attention = enc["input_ids"], enc["attention_mask"]
        never = ~attention.bool() | torch.isin(ids, special)
        inputs, labels = mask_tokens(ids, never, tokenizer.mask_token_id, candidates, generator)
        h = model.base_model(input_ids=inputs, attention_mask=attention)[0]
        keep = labels != -100
        hs.append(h[keep])
        ys.append(labels[keep])
    if not hs:
        return torch.zeros(0, model.config.hidden_size), torch.zeros(0, dtype=torch.long)
    return torch.cat(hs), torch.cat(ys)


def _first(texts: Iterable[str], n: int) -> list[str]:
    """The first `n` non-blank texts (a lazy corpus split is read only that far)."""
    return list(itertools.islice((t for t in texts if t.strip()), n))


def _mean_loss(
    model: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor, batch: int = 2048
) -> float:
    head = _head_module(model)
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            logits = head(hidden[i : i + batch])
            total += float(torch.nn.functional.cross_entropy(logits, labels[i : i + batch], reduction="sum"))
    return total / max(len(labels), 1)


def train_mlm_head(model: torch.nn.Module, tokenizer: Any, train_texts: Mapping[str, Iterable[str]],
                   held_texts: Mapping[str, Iterable[str]], params: Mapping[str, Any] | None = None
                   ) -> dict[str, Any]:  # fmt: skip
    """Train the MLM head of `model` in place on the frozen body's states; returns the record for the model's
    metadata: settings, positions, held-out loss per language before/after, ln V, seconds."""
    cfg = head_settings(params)
    if not train_texts:
        raise DataError("head training needs training sentences: no corpora were given")
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()  # dropout off: the cached states are those the head sees at inference
    grads = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        held = {lang: masked_states(model, tokenizer, _first(texts, cfg["held_out_sentences"]), cfg["seq_len"],
                                    torch.Generator().manual_seed(cfg["seed"] + 1))
                for lang, texts in sorted(held_texts.items())}  # fmt: skip
        parts = [masked_states(model, tokenizer, _first(texts, cfg["sentences"]), cfg["seq_len"],
                               torch.Generator().manual_seed(cfg["seed"]))
                 for _, texts in sorted(train_texts.items())]  # fmt: skip
        hidden, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        before = {lang: _mean_loss(model, *hl) for lang, hl in held.items()}
        losses = _fit(model, hidden, labels, cfg)
        after = {lang: _mean_loss(model, *hl) for lang, hl in held.items()}
    finally:
        for p, g in grads.items():
            p.requires_grad_(g)
        model.train(was_training)
    vocab = model.get_input_embeddings().weight.shape[0]
    record = {"init": "train", "settings": cfg, "train_positions": len(labels), "epochs_loss": losses,
              "ln_vocab": math.log(vocab), "held_out_loss_before": before, "held_out_loss": after,
              "held_out_positions": {lang: len(hl[1]) for lang, hl in held.items()},
              "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    log.info("MLM head trained on %d masked positions in %.0f s; held-out loss (ln V = %.2f): %s", len(labels),
             record["seconds"], record["ln_vocab"],
             ", ".join(f"{k} {before[k]:.2f} -> {v:.2f}" for k, v in after.items()))  # fmt: skip
    return record


def _fit(
    model: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor, cfg: Mapping[str, Any]
) -> list[float]:
    """Adam on the head's own parameters over shuffled minibatches of cached positions; mean loss per epoch."""
    params = _trainable_head_params(model)
    for p in params:
        p.requires_grad_(True)
    head = _head_module(model)
    opt = torch.optim.Adam(params, lr=cfg["lr"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    out = []
    for epoch in range(cfg["epochs"]):
        order = torch.randperm(len(labels), generator=gen)
        total = 0.0
        for i in range(0, len(order), cfg["batch_positions"]):
            idx = order[i : i + cfg["batch_positions"]]
            loss = torch.nn.functional.cross_entropy(head(hidden[idx]), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        out.append(round(total / len(order), 4))
        log.info("head epoch %d/%d: train loss %.3f", epoch + 1, cfg["epochs"], out[-1])
    return out
