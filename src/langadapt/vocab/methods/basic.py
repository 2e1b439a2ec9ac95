"""The basic init methods of the vocabulary paper (§3.2): IDENT (copy identical pieces and special tokens
by role), RANDOM (isotropic standard normal) and the random baseline of OFA / HyperOFA (normal with the
source embeddings' per-dimension mean and standard deviation)."""

from __future__ import annotations

import torch

from langadapt.core.errors import ConfigError
from langadapt.vocab.base import INIT_METHODS, InitContext, ident_pairs


@INIT_METHODS.register("ident")
def ident(ctx: InitContext, unassigned: set[int], rng: torch.Generator, fuzzy: bool = False) -> dict[int, int]:
    """REINIT-IDENT (vocabulary paper, Sec. 3.2): copy the source row of identical pieces and of the
    special tokens of the same role (``<s>``, ``<pad>``, ``</s>``, ``<unk>``, ``<mask>``).

    ``fuzzy=True`` (an extension, not in the paper): a target piece without an identical source piece copies
    a source piece equal up to case and the leading ``▁`` (`fuzzy_ident_pairs`); exact matches win, and
    ``report["ident"]`` counts ``exact`` and ``fuzzy`` matches."""
    if not isinstance(fuzzy, bool):
        raise ConfigError(f"init method 'ident': fuzzy must be true or false, got {fuzzy!r}")
    pairs = {t: s for t, s in ident_pairs(ctx).items() if t in unassigned}
    if fuzzy:
        extra = {t: s for t, s in fuzzy_ident_pairs(ctx).items() if t in unassigned and t not in pairs}
        ctx.report["ident"] = {"exact": len(pairs), "fuzzy": len(extra)}
        pairs.update(extra)
    return pairs


def fuzzy_ident_pairs(ctx: InitContext) -> dict[int, int]:
    """``{target id: source id}`` for the non-special target pieces *without* an identical source piece whose
    string equals a non-special source piece's up to case and a leading ``▁`` (``▁Haus`` ~ ``haus``). Among
    several candidates the one with the same ``▁`` status, then the same case, then the lowest id wins."""
    def key(p: str) -> str:
        return p.removeprefix("▁").casefold()

    src_special = set(ctx.source_specials.values())
    tgt_special = set(ctx.target_specials.values())
    candidates: dict[str, list[tuple[str, int]]] = {}
    for piece, s_id in ctx.source_vocab.items():
        if s_id not in src_special and key(piece):
            candidates.setdefault(key(piece), []).append((piece, s_id))
    pairs: dict[int, int] = {}
    for piece, t_id in ctx.target_vocab.items():
        if t_id in tgt_special or piece in ctx.source_vocab or key(piece) not in candidates:
            continue
        initial = piece.startswith("▁")
        bare = piece.removeprefix("▁")
        _, s_id = min(
            candidates[key(piece)],
            key=lambda c: (c[0].startswith("▁") != initial, c[0].removeprefix("▁") != bare, c[1]),
        )
        pairs[t_id] = s_id
    return pairs


@INIT_METHODS.register("random")
def random_source_stats(ctx: InitContext, unassigned: set[int], rng: torch.Generator):
    """Per-dimension normal with the mean and standard deviation of the source embeddings (special tokens
    excluded): the random baseline of OFA and HyperOFA (HyperOFA Sec. 3.5 "N(E[F^s], Var[F^s])", Sec. 4.3
    "Gaussian distribution with mean and standard deviations of the source embeddings")."""
    ids = torch.tensor(sorted(unassigned), dtype=torch.long)
    rows = ctx.non_special_source_rows()
    mean, std = rows.mean(0), rows.std(0) if rows.shape[0] > 1 else torch.zeros(ctx.dim)
    noise = torch.randn(len(ids), ctx.dim, generator=rng)
    return ids, mean + std * noise


@INIT_METHODS.register("random_normal")
def random_normal(
    ctx: InitContext, unassigned: set[int], rng: torch.Generator, mean: float = 0.0, std: float = 1.0
):
    """Isotropic normal ``N(mean, std^2)``; the default is the vocabulary paper's REINIT-RANDOM, "a Standard
    Normal Distribution about the origin" (Sec. 3.2, "Random Re-initialization")."""
    if std < 0:
        raise ConfigError(f"random_normal: std must be >= 0, got {std}")
    ids = torch.tensor(sorted(unassigned), dtype=torch.long)
    return ids, mean + std * torch.randn(len(ids), ctx.dim, generator=rng)
