"""Embedding initialization for a replaced or extended vocabulary (vocabulary specialization, Glot500,
HyperOFA baselines).

A source MLM keeps its transformer body; its embedding matrix ``[V_src, d]`` is replaced by one for the
target tokenizer ``[V_tgt, d]`` whose rows come from a chain of *init methods* applied in the configured
order. Each method sees only the target ids that are still unassigned, so earlier methods take precedence
(vocabulary paper, Sec. 3.2: "identity takes precedence"); e.g. ``["ident", "random"]``.

With ``vocab="extend"`` (Glot500 / LangSAMP Sec. 4.1) the target tokenizer is the source tokenizer with
the new pieces appended (`langadapt.models.tokenization.extend_tokenizer`): the source rows are copied first,
bit for bit, and the chain only initializes the appended ids.

A method is a function registered in `INIT_METHODS`::

    @INIT_METHODS.register("name")
    def name(ctx: InitContext, unassigned: set[int], rng: torch.Generator, **params) -> Assignment: ...

It returns, for the target ids it assigns (a subset of `unassigned`), either ``{target_id: row}`` where
``row`` is a ``[d]`` tensor or an ``int`` (= copy that *source* row, also used for the MLM decoder bias), or
a pair ``(ids [n] LongTensor, rows [n, d] Tensor)``. ``params`` are the method's config parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from langadapt.core.registry import Registry

Assignment = Mapping[int, "torch.Tensor | int"] | tuple[torch.Tensor, torch.Tensor]
InitMethod = Callable[..., Assignment]
INIT_METHODS: Registry[InitMethod] = Registry("embedding init method")

#: How a recipe's new tokenizer relates to the source vocabulary (recipe key ``vocab``).
VOCAB_MODES = ("replace", "extend")

#: Special-token roles, in the order in which they claim a target id (``<s>`` is both bos and cls).
ROLES = ("cls", "sep", "pad", "unk", "mask", "bos", "eos")
_ROLE_FALLBACK = {"bos": "cls", "cls": "bos", "eos": "sep", "sep": "eos"}


def special_roles(tokenizer) -> dict[str, int]:
    """``{role: id}`` from a tokenizer's special-token attributes (``bos_token_id``, ...).

    A missing bos/eos falls back to cls/sep and vice versa, so that XLM-R's ``<s>``/``</s>`` and BERT's
    ``[CLS]``/``[SEP]`` correspond.
    """
    ids = {r: getattr(tokenizer, f"{r}_token_id", None) for r in ROLES}
    for role, other in _ROLE_FALLBACK.items():
        if ids[role] is None:
            ids[role] = ids[other]
    return {r: int(i) for r, i in ids.items() if i is not None}


@dataclass
class InitResources:
    """Inputs some methods need (`langadapt.vocab.spec.NEEDS`), provided by the init rule."""

    texts: Mapping[str, Sequence[str]] | None = None  # lang -> train sentences of the target languages
    word_vectors: Mapping[str, Path] = field(default_factory=dict)  # word_vectors entry name -> directory
    hypernet_dir: Path | None = None  # trained hypernetwork of the base model
    workdir: Path | None = None  # scratch space (removed after the init)
    threads: int = 1


@dataclass
class InitContext:
    """What every init method may read: source embeddings, both vocabularies and special-token roles,
    the tokenizers themselves, the resources of :class:`InitResources`, and a `report` dict in which a
    method may leave diagnostics (``report[method] = {...}``, written to ``init_stats.json``)."""

    source_emb: torch.Tensor  # [V_src, d], float32
    source_vocab: dict[str, int]
    target_vocab: dict[str, int]
    source_specials: dict[str, int] = field(default_factory=dict)  # role -> source id
    target_specials: dict[str, int] = field(default_factory=dict)  # role -> target id
    source_tokenizer: Any = None
    target_tokenizer: Any = None
    resources: InitResources = field(default_factory=InitResources)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.source_emb.shape[1])

    def non_special_source_rows(self) -> torch.Tensor:
        """Source embedding rows without the special tokens (for distribution statistics)."""
        keep = torch.ones(self.source_emb.shape[0], dtype=torch.bool)
        keep[list(set(self.source_specials.values()))] = False
        return self.source_emb[keep] if keep.any() else self.source_emb


def ident_pairs(ctx: InitContext) -> dict[int, int]:
    """``{target id: source id}`` for REINIT-IDENT: special tokens by role, other pieces by identical string.

    Source special tokens are never matched by string (only by role).
    """
    pairs: dict[int, int] = {}
    for role, t_id in ctx.target_specials.items():
        if role in ctx.source_specials and t_id not in pairs:
            pairs[t_id] = ctx.source_specials[role]
    src_special = set(ctx.source_specials.values())
    tgt_special = set(ctx.target_specials.values())
    for piece, t_id in ctx.target_vocab.items():
        s_id = ctx.source_vocab.get(piece)
        if t_id not in tgt_special and s_id is not None and s_id not in src_special:
            pairs[t_id] = s_id
    return pairs


def overlap_fraction(ctx: InitContext) -> float:
    """Share of the target's non-special pieces whose string is a (non-special) source piece."""
    tgt_special = set(ctx.target_specials.values())
    n = sum(1 for i in ctx.target_vocab.values() if i not in tgt_special)
    n_shared = sum(1 for t in ident_pairs(ctx) if t not in tgt_special)
    return n_shared / n if n else 0.0


def normalize_assignment(
    result: Assignment, name: str, ctx: InitContext, unassigned: set[int]
) -> tuple[list[int], torch.Tensor, list[int]]:
    """(target ids, rows [n, d], source ids or -1) from any of the allowed return forms of a method."""
    d = ctx.dim
    if isinstance(result, tuple):
        ids_t, rows = result
        ids = [int(i) for i in ids_t]
        rows = torch.as_tensor(rows, dtype=torch.float32).reshape(len(ids), d)
        src = [-1] * len(ids)
    else:
        ids = [int(i) for i in result]
        src = [v if isinstance(v, int) else -1 for v in result.values()]
        rows = ctx.source_emb[torch.tensor([max(v, 0) for v in src], dtype=torch.long)].reshape(len(ids), d)
        for k, v in enumerate(result.values()):
            if not isinstance(v, int):
                rows[k] = torch.as_tensor(v, dtype=torch.float32)
    bad = [i for i in ids if i not in unassigned]
    if bad or len(set(ids)) != len(ids):
        raise RuntimeError(
            f"init method {name!r} assigned ids that are not (or no longer) unassigned: {bad[:10]}"
        )
    return ids, rows, src


def special_copies(ctx: InitContext, methods: list[str], fixed: Mapping[int, int] | None) -> dict[int, int]:
    """Special tokens copied by role (``<s>``, ``</s>``, ``<pad>``, ``<unk>``, ``<mask>``) in a chain without
    IDENT, which copies them itself (and counts them): no chain gives them random rows. The vocabulary paper's
    REINIT methods all start from the source model's special tokens (§3.2), as does OFA (§3)."""
    if "ident" in methods:
        return {}
    return {t: ctx.source_specials[role] for role, t in ctx.target_specials.items()
            if role in ctx.source_specials and t not in (fixed or {})}  # fmt: skip
