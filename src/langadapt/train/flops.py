"""Useful training FLOPs of a masked-language-model step and the measured matmul peak (for MFU).

Counting convention (matmuls only; embedding lookups, layer norms, softmax, activations and the
optimizer are not counted). Forward FLOPs of one step:

- per real (non-pad) token, per encoder layer: ``2 * (4 d^2 + 2 d ff)`` for the Q/K/V/output projections
  and the feed-forward block, plus ``2 * 2 * L d`` for the attention scores (QK^T) and the weighted sum
  of the values, where L is the real length of the token's sequence (attention over padding is waste);
- per MASKED token: the MLM head transform ``2 d^2`` and the vocabulary decoder ``2 d V`` (only masked
  positions contribute to the loss; logits computed elsewhere are waste).

Training FLOPs = 3 x forward (the backward pass costs about twice the forward: gradients with respect to
activations and to weights), as in Kaplan et al. (2020) and the PaLM MFU definition (Chowdhery et al.
2022, App. B). MFU = useful training FLOPs per second / :func:`matmul_flops_per_s` (fp32 ``torch.mm``
throughput measured on the same machine with the same threads, the practical peak).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import torch

_KEYS = ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size")


def _dims(config: Any) -> tuple[int, int, int, int]:
    """(hidden d, layers, intermediate ff, vocab V) of a PretrainedConfig-like object or mapping."""
    get = config.get if isinstance(config, Mapping) else lambda k: getattr(config, k, None)
    values = [get(k) for k in _KEYS]
    missing = [k for k, v in zip(_KEYS, values, strict=True) if v is None]
    if missing:
        raise ValueError(f"config lacks {', '.join(missing)} (needed to count FLOPs)")
    d, n_layers, ff, vocab = (int(v) for v in values)
    return d, n_layers, ff, vocab


def _lengths(seq_lengths: Iterable[int]) -> list[int]:
    lengths = [int(n) for n in seq_lengths]
    if any(n < 0 for n in lengths):
        raise ValueError(f"sequence lengths must be >= 0, got {lengths}")
    return lengths


def encoder_forward_flops(config: Any, seq_lengths: Iterable[int]) -> float:
    """Forward matmul FLOPs of the encoder layers over sequences of the given REAL lengths."""
    d, n_layers, ff, _ = _dims(config)
    lengths = _lengths(seq_lengths)
    tokens = sum(lengths)
    dense = 2 * (4 * d * d + 2 * d * ff) * tokens
    attention = 2 * 2 * d * sum(n * n for n in lengths)
    return float(n_layers * (dense + attention))


def head_forward_flops(config: Any, rows: int) -> float:
    """Forward matmul FLOPs of the MLM head (transform d x d + decoder d x V) on `rows` positions."""
    d, _, _, vocab = _dims(config)
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    return float(rows * (2 * d * d + 2 * d * vocab))


def mlm_forward_flops(config: Any, seq_lengths: Iterable[int], n_masked: int, *,
                      head_rows: int | None = None) -> float:
    """Forward FLOPs of one MLM step: encoder over the real tokens + head over the masked ones.

    `head_rows` (default `n_masked`) counts the head on that many positions instead, e.g. every
    position of a padded batch, to get the FLOPs a trainer actually executes rather than the useful ones.
    """
    if n_masked < 0:
        raise ValueError(f"n_masked must be >= 0, got {n_masked}")
    lengths = _lengths(seq_lengths)
    if n_masked > sum(lengths):
        raise ValueError(f"n_masked {n_masked} exceeds the {sum(lengths)} real tokens")
    rows = n_masked if head_rows is None else head_rows
    return encoder_forward_flops(config, lengths) + head_forward_flops(config, rows)


def mlm_train_flops(config: Any, seq_lengths: Iterable[int], n_masked: int, *,
                    head_rows: int | None = None) -> float:
    """Useful training FLOPs of one MLM step (forward + backward = 3 x forward); see the module doc.

    `config`: object or mapping with hidden_size, num_hidden_layers, intermediate_size, vocab_size;
    `seq_lengths`: real (non-pad) length of every sequence of the step, special tokens included;
    `n_masked`: positions that enter the loss (labels != -100).
    """
    return 3.0 * mlm_forward_flops(config, seq_lengths, n_masked, head_rows=head_rows)


def matmul_flops_per_s(threads: int | None = None, size: int = 2048, seconds: float = 2.0,
                       dtype: torch.dtype = torch.float32) -> float:
    """Measured ``torch.mm`` throughput (FLOP/s) of `size` x `size` matrices on the CPU.

    Runs for about `seconds` in blocks and returns the best block's rate (the practical peak). `threads`
    (None = the current setting) is set for the measurement and restored afterwards.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen, dtype=dtype)
        b = torch.randn(size, size, generator=gen, dtype=dtype)
        out = torch.empty(size, size, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up (thread pool, caches)
        flop = 2.0 * size**3
        t0 = time.perf_counter()
        t_single = time.perf_counter()
        torch.mm(a, b, out=out)
        per_mm = max(time.perf_counter() - t_single, 1e-9)
        reps = max(1, int(0.25 / per_mm))  # blocks of ~0.25 s
        best = flop / per_mm
        while time.perf_counter() - t0 < seconds:
            t1 = time.perf_counter()
            for _ in range(reps):
                torch.mm(a, b, out=out)
            best = max(best, reps * flop / (time.perf_counter() - t1))
        return best
    finally:
        torch.set_num_threads(before)
