"""Factorized token embeddings (OFA §3; HyperOFA §3.2; ALBERT): ``E = C @ P`` inside an HF masked LM.

``C`` ``[V, k]`` are the tokens' *coordinates* (token-specific), ``P`` ``[k, d]`` the *primitive embeddings*
shared by all tokens. With ``k < d`` the model has ``V k + k d`` embedding parameters instead of ``V d``.

On disk the factorization sits beside an ordinary model directory, so every stage and evaluation keeps
loading a plain ``AutoModelForMaskedLM`` whose embedding matrix *is* ``C @ P``:

- ``factorized.safetensors``: ``coordinates`` float32 ``[V, k]``, ``primitives`` float32 ``[k, d]``;
- ``factorized.json``: ``{"dim": k, "vocab_size": V, "hidden_size": d, ...}`` (how it was made).

Training the factors instead of ``E``::

    model = AutoModelForMaskedLM.from_pretrained(d)
    f = read_factorization(d)                    # None when the directory has no factorization
    install_factorized(model, f.coordinates, f.primitives)   # input embeddings + tied decoder read C @ P
    ... train (the parameters are ...word_embeddings.coordinates / .primitives) ...
    f = factorization_of(model); materialize(model)          # back to nn.Embedding / nn.Linear, tied
    model.save_pretrained(out); save_factorization(out, f.coordinates, f.primitives, {...})

`project_embeddings` gives the coordinates of a full matrix on fixed primitives (``E @ Pᵀ``, exact for rows
in their span when ``P`` has orthonormal rows, as `langadapt.models.factorization.factorize` returns).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from langadapt.core.checks import check_int
from langadapt.core.errors import ConfigError, DataError

WEIGHTS_FILE = "factorized.safetensors"
META_FILE = "factorized.json"


class FactorizedEmbedding(nn.Module):
    """A drop-in for ``nn.Embedding`` whose table is ``coordinates @ primitives`` (both trainable)."""

    def __init__(self, coordinates: torch.Tensor, primitives: torch.Tensor, padding_idx: int | None = None):
        super().__init__()
        if coordinates.ndim != 2 or primitives.ndim != 2 or coordinates.shape[1] != primitives.shape[0]:
            raise ValueError(f"coordinates {tuple(coordinates.shape)} and primitives {tuple(primitives.shape)} "
                             f"do not multiply")
        self.coordinates = nn.Parameter(coordinates.detach().clone())
        self.primitives = nn.Parameter(primitives.detach().clone())
        self.padding_idx = padding_idx
        self.tie_word_embeddings = True  # the model config's value before `install_factorized`

    @property
    def num_embeddings(self) -> int:
        return int(self.coordinates.shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(self.primitives.shape[1])

    @property
    def dim(self) -> int:
        return int(self.primitives.shape[0])

    @property
    def weight(self) -> torch.Tensor:
        """The full table ``[V, d]`` (computed; differentiable w.r.t. both factors)."""
        return self.coordinates @ self.primitives

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # padding_idx only masks gradients in nn.Embedding; the row itself is used as is, as there
        return F.embedding(input_ids, self.coordinates) @ self.primitives

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, dim={self.dim}"


class FactorizedDecoder(nn.Module):
    """The MLM output layer tied to a :class:`FactorizedEmbedding`: ``h @ (C P)ᵀ + b`` computed as
    ``(h @ Pᵀ) @ Cᵀ + b`` (never materializing ``[V, d]``)."""

    def __init__(self, embedding: FactorizedEmbedding, bias: nn.Parameter | None):
        super().__init__()
        self._embedding = [embedding]  # a list: not a submodule (its parameters are the embedding's)
        self.bias = bias

    @property
    def embedding(self) -> FactorizedEmbedding:
        return self._embedding[0]

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    @property
    def out_features(self) -> int:
        return self.embedding.num_embeddings

    @property
    def in_features(self) -> int:
        return self.embedding.embedding_dim

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        out = (hidden @ self.embedding.primitives.T) @ self.embedding.coordinates.T
        return out + self.bias if self.bias is not None else out


@dataclass
class Factorization:
    coordinates: torch.Tensor  # [V, k]
    primitives: torch.Tensor  # [k, d]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.primitives.shape[0])

    def product(self) -> torch.Tensor:
        return self.coordinates @ self.primitives


def project_embeddings(emb: torch.Tensor, primitives: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Coordinates ``emb @ Pᵀ`` of `emb` ``[V, d]`` on primitives with orthonormal rows, and the relative
    Frobenius error ``|E - C P| / |E|`` of the projection (0 when every row lies in the span)."""
    coords = (emb.double() @ primitives.double().T).float()
    err = torch.linalg.norm(emb.double() - coords.double() @ primitives.double()) / torch.linalg.norm(emb.double())
    return coords.contiguous(), float(err) if torch.isfinite(err) else 0.0


def factorize_init(source_emb: torch.Tensor, emb: torch.Tensor, dim: int, random_ids: list[int] | None = None,
                   stats_rows: torch.Tensor | None = None, seed: int = 0) -> tuple[torch.Tensor, Factorization]:
    """The init stage's ``factorize: dim`` (OFA §3, HyperOFA §3.2): primitives ``P`` = the top-`dim`
    right singular vectors of the *source* embeddings, coordinates ``C = E @ Pᵀ`` of the initialized
    matrix `emb`; returns (``C @ P``, the factorization). Rows in the span of ``P`` (e.g. OFA rows with the
    same ``dim``) are kept exactly; every other row becomes its best approximation in that span.

    `random_ids`: rows of the random fallback (neither copied nor predicted). OFA / HyperOFA draw them in the
    coordinate space, from ``N(E[F^s], Var[F^s])`` of the source coordinates ``F^s`` (HyperOFA §3.4, OFA §3):
    they are redrawn there (per-dimension mean and variance of `stats_rows` @ ``Pᵀ``, default all source
    rows; generator seeded with `seed`) instead of being projected, which would keep only the part of a
    full-space draw that lies in the span and shrink the leading coordinates' variance."""
    from langadapt.models.factorization import factorize

    check_int(dim, "factorize")
    _, prims = factorize(source_emb, dim)  # ConfigError unless 1 <= dim <= min(V_src, d)
    coords, err = project_embeddings(emb, prims)
    meta: dict = {"primitives": "top right singular vectors of the source embeddings", "projection_error": err}
    if random_ids:
        src_coords = project_embeddings(source_emb if stats_rows is None else stats_rows, prims)[0]
        mean, std = src_coords.mean(0), src_coords.std(0) if len(src_coords) > 1 else torch.zeros(dim)
        noise = torch.randn(len(random_ids), dim, generator=torch.Generator().manual_seed(seed))
        coords[torch.tensor(random_ids, dtype=torch.long)] = mean + std * noise
        meta["random_rows"] = {"n": len(random_ids), "drawn_in": "source coordinates N(mean, var)"}
    return coords @ prims, Factorization(coords, prims, meta)


def is_factorized(model: nn.Module) -> bool:
    return isinstance(model.get_input_embeddings(), FactorizedEmbedding)


def install_factorized(model: nn.Module, coordinates: torch.Tensor, primitives: torch.Tensor, *,
                       check: bool = True, atol: float = 1e-4) -> FactorizedEmbedding:
    """Replace the input embeddings of an HF MLM by a :class:`FactorizedEmbedding` and its (tied) decoder by
    a :class:`FactorizedDecoder` reading the same factors; the decoder bias Parameter is kept. With `check`,
    ``C @ P`` must equal the current embeddings (max abs difference <= `atol`; DataError otherwise), so
    that a stale factorization is never trained. ``config.tie_word_embeddings`` is off while installed
    (HF would otherwise re-tie ``decoder.weight``); `materialize` restores it."""
    if is_factorized(model):
        raise ValueError("the model already has factorized embeddings")
    old = model.get_input_embeddings()
    v, d = old.weight.shape
    if coordinates.shape[0] != v or primitives.shape[1] != d or coordinates.shape[1] != primitives.shape[0]:
        raise DataError(f"factorization {tuple(coordinates.shape)} x {tuple(primitives.shape)} does not fit "
                        f"embeddings of shape {(v, d)}")
    out_layer = model.get_output_embeddings()
    if out_layer is not None and out_layer.weight.data_ptr() != old.weight.data_ptr():
        raise ConfigError("factorized embeddings need a decoder tied to the input embeddings")
    dtype, device = old.weight.dtype, old.weight.device
    emb = FactorizedEmbedding(coordinates.to(device, dtype), primitives.to(device, dtype), old.padding_idx)
    if check:
        with torch.no_grad():
            diff = float((emb.weight - old.weight).abs().max())
        if diff > atol:
            raise DataError(f"coordinates @ primitives differ from the model's embeddings by up to {diff:.3g} "
                            f"(> {atol}): the factorization does not belong to this model")
    model.set_input_embeddings(emb)
    if out_layer is not None:
        model.set_output_embeddings(FactorizedDecoder(emb, out_layer.bias))
    emb.tie_word_embeddings = getattr(model.config, "tie_word_embeddings", True)  # restored by materialize
    model.config.tie_word_embeddings = False
    return emb


def factorization_of(model: nn.Module) -> Factorization:
    """The current factors of a model with installed factorized embeddings (detached float32 copies)."""
    emb = model.get_input_embeddings()
    if not isinstance(emb, FactorizedEmbedding):
        raise ValueError("the model has no factorized embeddings")
    return Factorization(emb.coordinates.detach().float().clone(), emb.primitives.detach().float().clone())


def materialize(model: nn.Module) -> nn.Module:
    """Turn installed factorized embeddings back into a plain ``nn.Embedding`` (weight ``C @ P``) and a
    decoder ``nn.Linear`` tied to it (same bias Parameter); the model is then an ordinary HF MLM again
    (``save_pretrained`` / ``from_pretrained`` as usual). Returns `model`."""
    emb = model.get_input_embeddings()
    if not isinstance(emb, FactorizedEmbedding):
        return model
    with torch.no_grad():
        table = emb.weight.detach().clone()
    plain = nn.Embedding(emb.num_embeddings, emb.embedding_dim, padding_idx=emb.padding_idx,
                         device=table.device, dtype=table.dtype)
    with torch.no_grad():
        plain.weight.copy_(table)
    plain.weight.requires_grad_(emb.coordinates.requires_grad)
    model.set_input_embeddings(plain)
    decoder = model.get_output_embeddings()
    if isinstance(decoder, FactorizedDecoder):
        linear = nn.Linear(emb.embedding_dim, emb.num_embeddings, bias=decoder.bias is not None,
                           device=table.device, dtype=table.dtype)
        linear.weight = plain.weight
        if decoder.bias is not None:
            linear.bias = decoder.bias
        model.set_output_embeddings(linear)
    model.config.tie_word_embeddings = getattr(emb, "tie_word_embeddings", True)
    return model


def save_factorization(model_dir: Path, coordinates: torch.Tensor, primitives: torch.Tensor,
                       meta: dict[str, Any] | None = None) -> None:
    """Write ``factorized.safetensors`` and ``factorized.json`` into `model_dir` (an existing directory)."""
    from safetensors.torch import save_file

    model_dir = Path(model_dir)
    tensors = {"coordinates": coordinates.detach().float().contiguous().cpu(),
               "primitives": primitives.detach().float().contiguous().cpu()}
    save_file(tensors, str(model_dir / WEIGHTS_FILE))
    info = {**(meta or {}), "dim": int(primitives.shape[0]), "vocab_size": int(coordinates.shape[0]),
            "hidden_size": int(primitives.shape[1])}
    (model_dir / META_FILE).write_text(json.dumps(info, indent=1) + "\n")


def read_factorization(model_dir: Path) -> Factorization | None:
    """The factorization saved beside a model directory, or None when it has none; DataError when the
    files are incomplete or inconsistent."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    weights, meta_path = model_dir / WEIGHTS_FILE, model_dir / META_FILE
    if not weights.exists() and not meta_path.exists():
        return None
    if not weights.is_file() or not meta_path.is_file():
        raise DataError(f"{model_dir}: {WEIGHTS_FILE} and {META_FILE} go together; one is missing")
    try:
        tensors = load_file(str(weights))
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (SafetensorError, OSError, json.JSONDecodeError) as e:
        raise DataError(f"{model_dir}: cannot read the factorization ({e})") from None
    c, p = tensors.get("coordinates"), tensors.get("primitives")
    if c is None or p is None or c.ndim != 2 or p.ndim != 2 or c.shape[1] != p.shape[0]:
        raise DataError(f"{weights}: expected coordinates [V, k] and primitives [k, d], got "
                        f"{ {k: tuple(t.shape) for k, t in tensors.items()} }")
    if meta.get("dim") != p.shape[0] or meta.get("vocab_size") != c.shape[0]:
        raise DataError(f"{meta_path}: dim/vocab_size {meta.get('dim')}/{meta.get('vocab_size')} do not match "
                        f"{WEIGHTS_FILE} ({p.shape[0]}/{c.shape[0]})")
    return Factorization(c, p, meta)
