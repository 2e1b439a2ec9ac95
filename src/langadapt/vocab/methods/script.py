"""REINIT-SCRIPT and REINIT-SCRIPT+POSN (vocabulary-specialization paper, Sec. 3.2, Figures 1-2).

XLM-R's token embeddings cluster by writing system (Fig. 1a/b) and, within a script, by whether a piece
begins a word or continues one (Fig. 1c). REINIT-SCRIPT draws each new piece's embedding from a normal
distribution with the per-dimension mean and standard deviation of the *source* embeddings of its script;
REINIT-SCRIPT+POSN does the same per (script, position) group. Registered as ``script`` and
``script_posn`` in `langadapt.vocab.base.INIT_METHODS`; combined with IDENT as ``[ident, script]``
(IDENT takes precedence, Sec. 3.2).

Conventions (documented choices where the paper is silent):

* **Script of a piece** (:func:`piece_script`): the word-boundary marker is stripped (SentencePiece ``▁``;
  WordPiece ``##``), then the Unicode Script property (ISO 15924, via `langadapt.core.languages.char_script`,
  i.e. ``unicodedataplus``) of every character is taken; Common (``Zyyy``), Inherited (``Zinh``) and
  Unknown (``Zzzz``) characters are ignored and the majority script wins (a tie goes to the script seen
  first). A piece with no other character (digits, punctuation, a bare ``▁``) is ``Zyyy`` (the paper's
  "Common" cluster, Fig. 1), or ``Zzzz`` if all its characters are unassigned / private-use. The paper
  groups by Unicode *block* as "a stand-in for identifying the script" (Sec. 3.2); the Script property is
  that identification itself (e.g. Latin-1 Supplement letters are Latin, not a separate block).
* **Position** (:func:`piece_position`): ``initial`` when the piece starts with ``▁`` (SentencePiece, the
  paper's footnote 2), otherwise ``medial``; for a WordPiece vocabulary (more ``##`` than ``▁`` pieces),
  ``medial`` when it starts with ``##``.
* **Special tokens** (by role, `InitContext.source_specials` / ``target_specials``) never enter the
  statistics and are never assigned here; end the chain with a method that assigns them (``ident`` before,
  or ``random_normal`` after, as the paper's "Random Re-initialization" of everything left over).
* **Fallbacks**: a group with fewer than ``min_count`` (default 2, the least a standard deviation needs)
  source pieces is not used; SCRIPT+POSN then falls back to the script's statistics, then (both methods)
  to those of all non-special source pieces. Each fallback is counted in the report.

Report (``init_stats.json`` -> ``report.script`` / ``report.script_posn``): ``assigned`` (target pieces
per group), ``source_pieces`` (source pieces per group with usable statistics), ``fallbacks``
(``{group: {"stats": group used, "pieces": n}}``), ``n_fallback``, ``skipped_special``, ``min_count``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.languages import NEUTRAL_SCRIPTS, char_script
from langadapt.vocab.base import INIT_METHODS, InitContext

SP_MARK = "▁"  # SentencePiece word-boundary marker (U+2581)
WP_MARK = "##"  # WordPiece continuation marker
COMMON, UNKNOWN = "Zyyy", "Zzzz"
INITIAL, MEDIAL = "initial", "medial"
ALL = "all"  # name of the fallback group: every non-special source piece


def is_wordpiece(pieces: Iterable[str]) -> bool:
    """Whether a vocabulary marks word-*medial* pieces (``##``, WordPiece) rather than word-initial ones."""
    n_wp = n_sp = 0
    for p in pieces:
        n_wp += p.startswith(WP_MARK)
        n_sp += p.startswith(SP_MARK)
    return n_wp > n_sp


def strip_marker(piece: str, wordpiece: bool = False) -> str:
    """The piece's characters without its word-boundary marker."""
    if wordpiece:
        return piece.removeprefix(WP_MARK)
    return piece.removeprefix(SP_MARK)


_CHAR_SCRIPT: dict[str, str] = {}  # character -> ISO 15924 (a vocabulary has a few thousand distinct ones)


def piece_script(piece: str, wordpiece: bool = False) -> str:
    """ISO 15924 script of a vocabulary piece: the majority Unicode Script of its characters, ignoring
    Common / Inherited / Unknown ones (ties: the script seen first); ``Zyyy`` if nothing else is left
    (``Zzzz`` if every character is unassigned). E.g. ``▁Haus`` -> ``Latn``, ``ция`` -> ``Cyrl``,
    ``▁12`` -> ``Zyyy``."""
    chars = strip_marker(piece, wordpiece)
    counts: dict[str, int] = {}  # insertion-ordered: max() below returns the first script among ties
    all_unknown = bool(chars)
    for ch in chars:
        sc = _CHAR_SCRIPT.get(ch)
        if sc is None:
            sc = _CHAR_SCRIPT[ch] = char_script(ch)
        if sc not in NEUTRAL_SCRIPTS:
            counts[sc] = counts.get(sc, 0) + 1
            all_unknown = False
        elif sc != UNKNOWN:
            all_unknown = False
    if not counts:
        return UNKNOWN if all_unknown else COMMON
    if len(counts) == 1:
        return next(iter(counts))
    return max(counts, key=counts.__getitem__)


def piece_position(piece: str, wordpiece: bool = False) -> str:
    """``initial`` (the piece begins a word) or ``medial`` (vocabulary paper, Sec. 3.1 and footnote 2)."""
    if wordpiece:
        return MEDIAL if piece.startswith(WP_MARK) else INITIAL
    return INITIAL if piece.startswith(SP_MARK) else MEDIAL


def group_name(script: str, position: str | None = None) -> str:
    return script if position is None else f"{script}/{position}"


def _piece_groups(vocab: Mapping[str, int], skip: set[int], with_position: bool) -> dict[int, tuple[str, str]]:
    """``{id: (script, position)}`` of the non-special pieces (position '' without `with_position`)."""
    wp = is_wordpiece(vocab)
    return {
        i: (piece_script(p, wp), piece_position(p, wp) if with_position else "")
        for p, i in vocab.items()
        if i not in skip
    }


class _Stats:
    """Per-dimension mean and (unbiased) standard deviation of groups of source rows with at least
    `min_count` members, from per-group moments (:func:`group_moments`)."""

    def __init__(self, moments: Mapping[str, tuple[int, torch.Tensor, torch.Tensor]], min_count: int):
        self.mean: dict[str, torch.Tensor] = {}
        self.std: dict[str, torch.Tensor] = {}
        self.count: dict[str, int] = {}
        for name, (n, mean, m2) in moments.items():
            if n >= min_count:
                self.mean[name] = mean.float()
                self.std[name] = (m2 / (n - 1)).clamp_min(0).sqrt().float()
                self.count[name] = n

    def __contains__(self, name: str) -> bool:
        return name in self.mean


def group_moments(
    emb: torch.Tensor, groups: Mapping[int, str], chunk: int = 1 << 16
) -> dict[str, tuple[int, torch.Tensor, torch.Tensor]]:
    """``{group: (n, mean [d], M2 [d])}`` (M2 = sum of squared deviations) of the rows ``emb[id]`` per
    group, in two chunked passes (float64 accumulators; memory bounded by `chunk` rows)."""
    names = sorted(set(groups.values()))
    index = {g: k for k, g in enumerate(names)}
    ids = torch.tensor(list(groups), dtype=torch.long)
    gidx = torch.tensor([index[g] for g in groups.values()], dtype=torch.long)
    d = emb.shape[1]
    count = torch.bincount(gidx, minlength=len(names)).double()
    total = torch.zeros(len(names), d, dtype=torch.float64)
    for a in range(0, len(ids), chunk):
        total.index_add_(0, gidx[a : a + chunk], emb[ids[a : a + chunk]].double())
    mean = total / count.unsqueeze(1)
    m2 = torch.zeros_like(total)
    for a in range(0, len(ids), chunk):
        g = gidx[a : a + chunk]
        m2.index_add_(0, g, (emb[ids[a : a + chunk]].double() - mean[g]).square())
    return {name: (int(count[k]), mean[k], m2[k]) for k, name in enumerate(names)}


def merge_moments(
    parts: Iterable[tuple[int, torch.Tensor, torch.Tensor]],
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Moments of the union of groups (Chan et al.'s parallel variance formula)."""
    parts = list(parts)
    n = sum(p[0] for p in parts)
    mean = sum(p[0] * p[1] for p in parts) / n
    m2 = sum(p[2] + p[0] * (p[1] - mean).square() for p in parts)
    return n, mean, m2  # type: ignore[return-value]


def _check_min_count(method: str, min_count: object) -> int:
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 2:
        raise ConfigError(
            f"init method {method!r}: min_count must be an integer >= 2 (a standard deviation needs two source "
            f"pieces), got {min_count!r}"
        )
    return min_count


def _source_groups(ctx: InitContext, method: str, with_position: bool) -> dict[int, tuple[str, str]]:
    n_rows = ctx.source_emb.shape[0]
    groups = _piece_groups(ctx.source_vocab, set(ctx.source_specials.values()), with_position)
    if not groups:
        raise DataError(
            f"init method {method!r}: the source vocabulary ({len(ctx.source_vocab)} pieces) has no non-special "
            f"piece to compute script statistics from"
        )
    bad = [i for i in groups if not 0 <= i < n_rows]
    if bad:
        inv = {i: p for p, i in ctx.source_vocab.items()}
        raise DataError(
            f"init method {method!r}: source piece {inv[bad[0]]!r} has id {bad[0]}, outside the source embedding "
            f"matrix ({n_rows} rows)"
        )
    return groups


def script_sample(
    ctx: InitContext,
    unassigned: set[int],
    rng: torch.Generator,
    *,
    with_position: bool,
    min_count: int,
    method: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared body of ``script`` / ``script_posn``: (target ids, rows) and ``ctx.report[method]``."""
    min_count = _check_min_count(method, min_count)
    src = _source_groups(ctx, method, with_position)
    if len(src) < 2:
        raise DataError(
            f"init method {method!r}: the source vocabulary has only {len(src)} non-special piece; the "
            f"fallback statistics need at least 2"
        )
    # moments per finest group, merged into scripts and into all pieces (one pass over the source rows)
    finest = group_moments(ctx.source_emb, {i: group_name(sc, pos or None) for i, (sc, pos) in src.items()})
    per_script: dict[str, list[tuple[int, torch.Tensor, torch.Tensor]]] = {}
    for name, mom in finest.items():
        per_script.setdefault(name.split("/")[0], []).append(mom)
    script_moments = {sc: merge_moments(parts) for sc, parts in per_script.items()}
    stats_all = _Stats({ALL: merge_moments(script_moments.values())}, 2)
    stats_script = _Stats(script_moments, min_count)
    stats_group = _Stats(finest, min_count) if with_position else None

    tgt_special = set(ctx.target_specials.values())
    targets = _piece_groups(ctx.target_vocab, tgt_special, with_position)
    ids = sorted(i for i in targets if i in unassigned)
    skipped = sum(1 for i in tgt_special if i in unassigned)
    assigned: Counter[str] = Counter()
    fallbacks: dict[str, dict[str, Any]] = {}
    table: dict[tuple[int, str], int] = {}  # (statistics level, group) -> row of mean/std below
    levels = (stats_all, stats_script, stats_group)
    row_of: list[int] = []
    for i in ids:
        script, pos = targets[i]
        own = group_name(script, pos if with_position else None)
        if stats_group is not None and own in stats_group:
            used, st = own, stats_group
        elif script in stats_script:
            used, st = script, stats_script
        else:
            used, st = ALL, stats_all
        assigned[own] += 1
        if used != own:
            fb = fallbacks.setdefault(own, {"stats": used, "pieces": 0})
            fb["pieces"] += 1
        row_of.append(table.setdefault((levels.index(st), used), len(table)))
    ids_t = torch.tensor(ids, dtype=torch.long)
    if ids:
        keys = sorted(table, key=table.get)
        mean = torch.stack([levels[lv].mean[g] for lv, g in keys])  # type: ignore[union-attr]
        std = torch.stack([levels[lv].std[g] for lv, g in keys])  # type: ignore[union-attr]
        idx = torch.tensor(row_of, dtype=torch.long)
        rows = mean[idx] + std[idx] * torch.randn(len(ids), ctx.dim, generator=rng)
    else:
        rows = torch.empty(0, ctx.dim)
    used_groups = stats_group.count if stats_group is not None else stats_script.count
    ctx.report[method] = {
        "assigned": dict(sorted(assigned.items())),
        "source_pieces": dict(sorted(used_groups.items())),
        "fallbacks": dict(sorted(fallbacks.items())),
        "n_fallback": sum(f["pieces"] for f in fallbacks.values()),
        "skipped_special": skipped,
        "min_count": min_count,
    }
    if with_position:
        ctx.report[method]["source_pieces_script"] = dict(sorted(stats_script.count.items()))
    return ids_t, rows


@INIT_METHODS.register("script")
def script(ctx: InitContext, unassigned: set[int], rng: torch.Generator, min_count: int = 2):
    """REINIT-SCRIPT (vocabulary paper, Sec. 3.2 "Re-initialization by Script", Fig. 2b): each new non-special
    piece gets a sample of N(mean_s, diag(std_s^2)), the per-dimension mean and standard deviation of the
    source embeddings of its script s (:func:`piece_script`); scripts with fewer than `min_count` source
    pieces fall back to the statistics of all non-special source pieces."""
    return script_sample(ctx, unassigned, rng, with_position=False, min_count=min_count, method="script")


@INIT_METHODS.register("script_posn")
def script_posn(ctx: InitContext, unassigned: set[int], rng: torch.Generator, min_count: int = 2):
    """REINIT-SCRIPT+POSN (vocabulary paper, Sec. 3.2 "Re-initialization by Position", Fig. 2c): as
    :func:`script`, with statistics per (script, word-initial / word-medial) group (:func:`piece_position`);
    a group with fewer than `min_count` source pieces falls back to its script, then to all pieces."""
    return script_sample(ctx, unassigned, rng, with_position=True, min_count=min_count, method="script_posn")
