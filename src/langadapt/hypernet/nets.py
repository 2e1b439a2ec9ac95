"""HyperOFA's hypernetworks (hyperofa.txt §3.4, App. A): a set of word vectors -> one coordinate vector.

Every kind (registry `HYPERNETS`) maps ``vectors [B, n, d_in]`` and a left-aligned boolean ``mask [B, n]``
(True = a real vector) to ``[B, d_out]``; ``[B, d_in]`` is a batch of one-vector sets. ``bilstm`` is the
paper's, ``mlp`` a mean-pool baseline, ``set_transformer`` the paper's "Setformer" ablation (App. A.1).
Training and data: `langadapt.hypernet.training`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from langadapt.core.registry import Registry

HYPERNETS: Registry[type[nn.Module]] = Registry("hypernetwork")


def _head(d: int, d_out: int, dropout: float) -> nn.Sequential:
    """HyperOFA's output block: ``d -> 2 d_out -> GELU -> dropout -> d_out``."""
    return nn.Sequential(nn.Linear(d, 2 * d_out), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d_out, d_out))


@torch.no_grad()
def _start_at(last: nn.Linear, mean: torch.Tensor) -> None:
    """Output layer starts at the mean training target: bias = `mean`, weight scaled by 0.1 (not in the
    paper; short runs start at the mean-embedding baseline instead of at noise)."""
    last.bias.copy_(mean)
    last.weight.mul_(0.1)


def _as_set(vectors: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, n, d]`` vectors and a boolean mask (True = real); ``[B, d]`` is a set of one vector each."""
    if vectors.dim() == 2:
        vectors = vectors.unsqueeze(1)
    if mask is None:
        mask = torch.ones(vectors.shape[:2], dtype=torch.bool, device=vectors.device)
    if mask.shape != vectors.shape[:2]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} for vectors of shape {tuple(vectors.shape)}")
    return vectors, mask.bool()


@HYPERNETS.register("mlp")
class MLPHypernet(nn.Module):
    """Baseline: masked mean of the set, then an MLP ``d_in -> hidden (x layers) -> d_out`` (GELU).
    Permutation-invariant."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 256, layers: int = 2, dropout: float = 0.0):
        super().__init__()
        dims = [d_in] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            blocks += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
        blocks.append(nn.Linear(dims[-1], d_out))
        self.net = nn.Sequential(*blocks)

    def init_output(self, mean: torch.Tensor) -> None:
        _start_at(self.net[-1], mean)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`vectors` ``[B, n, d_in]`` (or ``[B, d_in]``), `mask` ``[B, n]`` (True = real) -> ``[B, d_out]``."""
        vectors, mask = _as_set(vectors, mask)
        m = mask.to(vectors.dtype).unsqueeze(-1)
        return self.net((vectors * m).sum(1) / m.sum(1).clamp(min=1))


@HYPERNETS.register("bilstm")
class BiLSTMHypernet(nn.Module):
    """HyperOFA's hypernetwork (§3.4, App. A.2, the authors' ``LSTMModel``): a bidirectional LSTM over the
    set (dropout between layers), pooled by concatenating the last layer's final forward and backward hidden
    states, then ``2 hidden -> 2 d_out -> GELU -> dropout -> d_out``. Order-sensitive by construction: the
    paper trains it on shuffled sets instead. Masks must be left-aligned (real vectors first)."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 800, layers: int = 2, dropout: float = 0.4):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.head = _head(2 * hidden, d_out, dropout)

    def init_output(self, mean: torch.Tensor) -> None:
        _start_at(self.head[-1], mean)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        vectors, mask = _as_set(vectors, mask)
        lengths = mask.sum(1)
        if bool((lengths == 0).any()) or bool((mask.int().diff(dim=1) > 0).any()):
            raise ValueError("bilstm hypernetwork: every set needs >= 1 vector and a left-aligned mask")
        packed = nn.utils.rnn.pack_padded_sequence(vectors, lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=-1))


@HYPERNETS.register("set_transformer")
class SetTransformerHypernet(nn.Module):
    """Ablation (HyperOFA App. A.1 "Setformer": a transformer encoder without positional encodings): a
    linear projection, pre-norm self-attention blocks over the set, pooling by attention from one learned
    query (Lee et al. 2019, PMA), and HyperOFA's output block. Permutation-invariant."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 256, layers: int = 2, dropout: float = 0.0,
                 heads: int = 4):
        super().__init__()
        self.proj = nn.Linear(d_in, hidden)
        block = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.query = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.pool = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.head = _head(hidden, d_out, dropout)

    def init_output(self, mean: torch.Tensor) -> None:
        _start_at(self.head[-1], mean)

    def forward(self, vectors: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        vectors, mask = _as_set(vectors, mask)
        pad = ~mask
        x = self.encoder(self.proj(vectors), src_key_padding_mask=pad)
        pooled, _ = self.pool(self.query.expand(len(x), -1, -1), x, x, key_padding_mask=pad,
                              need_weights=False)
        return self.head(pooled.squeeze(1))


def build_hypernetwork(kind: str, d_in: int, d_out: int, cfg: dict[str, Any]) -> tuple[nn.Module, dict]:
    """(network, its constructor arguments) for a resolved config (`resolve_cfg`)."""
    params = {"d_in": int(d_in), "d_out": int(d_out), "hidden": cfg["hidden"], "layers": cfg["layers"],
              "dropout": cfg["dropout"]}
    if kind == "set_transformer":
        params["heads"] = cfg["heads"]
    return HYPERNETS.get(kind)(**params), params
