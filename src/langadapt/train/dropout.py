"""Dropout with a cheaper mask on CPU, for the attention probabilities and the hidden states (issue 21).

On CPU, ``torch.bernoulli_`` draws one 32-bit number per element (~7 ns each on this machine): 7% of a
continued-pretraining step of a 12-layer encoder at seq_len 128 (attention probabilities [8, 12, 128,
128] per layer: 11 ms; hidden states [8, 128, 384]: 2.5 ms; 37 masks per step). Here the keep/drop
decision of an element takes 16 random bits: one 64-bit draw of the same (global, checkpointed) torch
generator gives four elements, then one comparison: 3.3 ms and 0.7 ms for those shapes, the same
distribution to within the quantisation of p to a multiple of 2^-16 (0.1 -> 6554/65536 = 0.1000061); the
kept elements are scaled by ``1 / (1 - p_drawn)``, so the expectation is the input's exactly.

Only on CPU and in training: on GPU the stock kernels (SDPA's fused dropout, ``native_dropout``) already
draw their masks cheaply, and the model keeps them. :func:`cpu_dropout` switches a model to this dropout
for the duration of a training run and back (``nn.Dropout`` modules and the attention implementation,
which is registered with transformers' ``AttentionInterface`` and never reaches a saved ``config.json``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION = "langadapt_cpu_dropout"  # attn_implementation name while a model trains on CPU
_BITS = 16


def drop_threshold(p: float) -> int:
    """Elements whose 16-bit draw (as a signed int16) is below ``-2^15 + threshold`` are dropped."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    return round(p * (1 << _BITS))


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device: torch.device | str = "cpu",
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
    """(boolean keep mask of `shape`, scale ``1 / (1 - p_drawn)``); p_drawn = threshold / 2^16."""
    threshold = drop_threshold(p)
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(1 << 63), None, generator=generator)  # all 64 bits uniform: four 16-bit draws
    draws = words.view(torch.int16)[:n].view(shape)
    keep = draws >= -(1 << (_BITS - 1)) + threshold
    return keep, 1.0 / (1.0 - threshold / (1 << _BITS))


class _MaskedScale(torch.autograd.Function):
    """``where(keep, x, 0) * scale``; backward applies the same mask and scale (keeps only the bool mask)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x, 0.0).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad, 0.0).mul_(ctx.scale), None, None


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout: this module's 16-bit mask on CPU, ``F.dropout`` elsewhere."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    keep, scale = keep_mask(x.shape, p, x.device)
    return _MaskedScale.apply(x, keep, scale)


class CpuDropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with :func:`keep_mask` on CPU (the same module otherwise)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace or x.device.type != "cpu":
            return super().forward(x)
        return dropout(x, self.p, self.training)


def attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
              is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers attention interface: softmax(q k^T * scaling + mask) with this module's dropout, then v.

    Delegates to transformers' SDPA function whenever the cheaper mask does not apply (not CPU, no dropout,
    eval mode, a causal model). `attention_mask` is SDPA's (boolean, True = attend, or additive float).
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)
    if query.device.type != "cpu" or dropout == 0.0 or not module.training or causal \
            or key.shape[1] != query.shape[1]:  # (grouped-query heads: SDPA's path)
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout,
                                      scaling=scaling, is_causal=is_causal, **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)).mul_(scale)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill_(~attention_mask, float("-inf"))
        else:
            scores = scores.add_(attention_mask)
    probs = _dropout_fn(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


_dropout_fn = dropout  # `attention`'s argument named dropout shadows the function


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


@contextlib.contextmanager
def cpu_dropout(model: nn.Module, device: torch.device | str) -> Iterator[dict[str, int]]:
    """While training on CPU: `model`'s ``nn.Dropout`` modules become :class:`CpuDropout` and its SDPA
    attention :func:`attention`; both restored on exit. Yields how many of each were switched (none on
    other devices: nothing changes there)."""
    if torch.device(device).type != "cpu":
        yield {"dropout_modules": 0, "attention_configs": 0}
        return
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout and not child.inplace:
                replacement = CpuDropout(child.p)
                replacement.train(child.training)
                setattr(parent, name, replacement)
                swapped.append((parent, name, child))
    configs = {id(c): c for m in model.modules()
               if getattr(c := getattr(m, "config", None), "_attn_implementation", None) == "sdpa"}
    if configs:
        _register()
    for c in configs.values():
        c._attn_implementation = ATTENTION
    try:
        yield {"dropout_modules": len(swapped), "attention_configs": len(configs)}
    finally:
        for c in configs.values():
            c._attn_implementation = "sdpa"
        for parent, name, child in swapped:
            child.train(getattr(parent, name).training)
            setattr(parent, name, child)
