"""Low-rank factorization of an embedding matrix (OFA §3; HyperOFA §3.2): ``E ≈ C @ P``.

``C`` ``[V, k]`` are the tokens' *coordinates* and ``P`` ``[k, d]`` the *primitive embeddings* shared by
all tokens. From the SVD ``E = U S Vᵀ``: ``C = U_k S_k`` and ``P = V_kᵀ``, so that at ``k = rank(E)`` the
product reconstructs ``E`` and for smaller ``k`` it is the best rank-k approximation (Eckart-Young).
New tokens are initialized in the coordinate space (dimension k) and mapped back with ``P``.
"""

from __future__ import annotations

import torch

from langadapt.core.errors import ConfigError


def factorize(emb: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(coordinates ``[V, dim]``, primitives ``[dim, d]``) of `emb` ``[V, d]`` (float32, deterministic)."""
    if emb.ndim != 2:
        raise ValueError(f"expected a [V, d] matrix, got shape {tuple(emb.shape)}")
    if not 1 <= dim <= min(emb.shape):
        raise ConfigError(f"factorization dimension must be in 1..{min(emb.shape)}, got {dim}")
    u, s, vh = torch.linalg.svd(emb.double(), full_matrices=False)
    # sign convention: the largest-magnitude entry of each primitive row is positive (stable across runs)
    idx = vh[:dim].abs().argmax(dim=1)
    sign = torch.sign(vh[:dim].gather(1, idx[:, None])).squeeze(1)
    sign[sign == 0] = 1
    coords = (u[:, :dim] * s[:dim] * sign).float()
    prims = (vh[:dim] * sign[:, None]).float()
    return coords.contiguous(), prims.contiguous()
