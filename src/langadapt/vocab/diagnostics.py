"""PCA diagnostics of an embedding initialization (vocabulary-specialization paper, Sec. 3.1-3.2, Figures
1-3 and 5).

The paper inspects XLM-R's token-embedding space by a 2-D PCA projection colored by script (Fig. 1a/b) and
by word-initial vs word-medial position (Fig. 1c), and shows the re-initialized embeddings of each method in
the same way (Fig. 2, 3, 5). :func:`pca_figure` draws both spaces in *one* projection, fitted on the
source's non-special embeddings, so that the initialized points land where the source's clusters are:
row 1 the source, row 2 the initialized embeddings; columns: by script (the most frequent scripts of the
source, the rest grey), by position, and (when given) copied from a source row vs newly drawn.

`langadapt.vocab.chain.initialize_embeddings` calls it (``diagnostics=True``, as the workflow's init
rule does) and writes ``pca.png`` into the model directory; only the plotting needs matplotlib (Agg
canvas, no pyplot state).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from langadapt.core.atomic import save_figure
from langadapt.core.errors import DataError
from langadapt.vocab.methods.script import INITIAL, MEDIAL, is_wordpiece, piece_position, piece_script

#: Points drawn per space (a seeded subsample; XLM-R has 250k pieces).
MAX_POINTS = 4000
#: Source rows the PCA is fitted on (a seeded subsample).
FIT_POINTS = 10000
#: Scripts with their own color (Fig. 1a shows "the 12 most common Unicode scripts", ranked here on the
#: PCA's fit sample of the source); the others are grey.
TOP_SCRIPTS = 12


def _pieces(
    vocab: Mapping[str, int], specials: Mapping[str, int], n_rows: int, what: str
) -> list[tuple[int, str]]:
    """Sorted ``[(id, piece)]`` of the non-special pieces with an embedding row."""
    skip = set(specials.values())
    out = sorted((i, p) for p, i in vocab.items() if i not in skip and 0 <= i < n_rows)
    if not out:
        raise DataError(
            f"PCA diagnostics: the {what} vocabulary ({len(vocab)} pieces, {n_rows} embedding rows) has no "
            f"non-special piece to plot"
        )
    return out


def _subsample(items: list, k: int, gen: torch.Generator) -> list:
    if len(items) <= k:
        return items
    keep = torch.randperm(len(items), generator=gen)[:k].sort().values
    return [items[i] for i in keep.tolist()]


def fit_pca(rows: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """(mean [d], components [d, k], explained variance ratios) of `rows` [n, d]; components beyond the
    data's rank are zero."""
    if rows.shape[0] < 2:
        raise DataError(f"PCA diagnostics: need at least 2 source pieces to fit a PCA, got {rows.shape[0]}")
    x = rows.float()
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc  # [d, d]: its eigendecomposition is far cheaper than an SVD of [n, d]
    var, vecs = torch.linalg.eigh(cov)  # ascending
    var, vecs = var.flip(0).clamp_min(0), vecs.flip(1)
    comps = torch.zeros(x.shape[1], k)
    m = min(k, x.shape[1])
    comps[:, :m] = vecs[:, :m]
    total = float(torch.diagonal(cov).double().sum())  # total variance = trace
    ratios = [float(v) / total if total > 0 else 0.0 for v in var[:m]] + [0.0] * (k - m)
    return mean, comps, ratios


def pca_figure(
    source_emb: torch.Tensor,
    source_vocab: Mapping[str, int],
    source_specials: Mapping[str, int],
    target_emb: torch.Tensor,
    target_vocab: Mapping[str, int],
    target_specials: Mapping[str, int],
    out_path: Path,
    *,
    copied: torch.Tensor | None = None,
    title: str = "",
    max_points: int = MAX_POINTS,
    fit_points: int = FIT_POINTS,
    top_scripts: int = TOP_SCRIPTS,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the PCA figure of the source and the initialized embedding spaces to `out_path` (PNG).

    Args:
        copied: optional bool ``[V_tgt]``: target rows copied from a source row (IDENT, kept rows); adds a
            third column "copied vs new".
        max_points: points drawn per space (seeded subsample); `fit_points`: source rows the PCA is fitted on.

    Returns:
        ``{"file", "explained_variance" (the two components' ratios on the source), "points": {"source",
        "target"}, "scripts" (colored, most frequent first)}``.

    Raises:
        DataError: a vocabulary without non-special pieces, fewer than 2 source pieces, or non-finite rows.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    gen = torch.Generator().manual_seed(seed)
    src_pieces = _pieces(source_vocab, source_specials, source_emb.shape[0], "source")
    tgt_pieces = _pieces(target_vocab, target_specials, target_emb.shape[0], "target")
    src_emb, tgt_emb = source_emb.detach().float(), target_emb.detach().float()
    fit = _subsample(src_pieces, fit_points, gen)
    fit_rows = src_emb[torch.tensor([i for i, _ in fit])]
    if not torch.isfinite(fit_rows).all():
        raise DataError("PCA diagnostics: the source embeddings contain NaN or infinite values")
    mean, comps, ratios = fit_pca(fit_rows)
    src_wp, tgt_wp = is_wordpiece(source_vocab), is_wordpiece(target_vocab)
    panels = []
    spaces = (("source", src_pieces, src_emb, src_wp), ("initialized", tgt_pieces, tgt_emb, tgt_wp))
    for name, pieces, emb, wp in spaces:
        shown = _subsample(pieces, max_points, gen)
        ids = torch.tensor([i for i, _ in shown])
        rows = emb[ids]
        finite = torch.isfinite(rows).all(1)
        if not finite.all():
            raise DataError(f"PCA diagnostics: {int((~finite).sum())} {name} embedding rows are NaN or infinite")
        xy = ((rows - mean) @ comps).numpy()
        panels.append({
            "name": name,
            "xy": xy,
            "script": [piece_script(p, wp) for _, p in shown],
            "position": [piece_position(p, wp) for _, p in shown],
            "copied": None if copied is None or name == "source" else copied[ids].bool().tolist(),
        })
    counts = Counter(piece_script(p, src_wp) for _, p in fit)  # script frequencies, from the fit sample
    colored = [s for s, _ in counts.most_common(top_scripts)]
    for s, _ in Counter(panels[1]["script"]).most_common():  # target scripts absent from the source's top
        if s not in colored and len(colored) < top_scripts + 4:
            colored.append(s)

    ncols = 3 if copied is not None else 2
    fig = Figure(figsize=(5.2 * ncols, 9.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, ncols, sharex=True, sharey=True, squeeze=False)
    palette = _palette(len(colored))
    script_color = {s: palette[k] for k, s in enumerate(colored)}
    for r, panel in enumerate(panels):
        xy = panel["xy"]
        ax = axes[r][0]
        _scatter(ax, xy, panel["script"], [None, *colored], script_color, other="other")  # grey underneath
        ax.set_title(f"{panel['name']}: by script")
        ax = axes[r][1]
        _scatter(ax, xy, panel["position"], [INITIAL, MEDIAL], {INITIAL: "tab:blue", MEDIAL: "tab:orange"})
        ax.set_title(f"{panel['name']}: word-initial vs medial")
        if ncols == 3:
            ax = axes[r][2]
            if panel["copied"] is None:
                ax.set_axis_off()
            else:
                kind = ["copied" if c else "new" for c in panel["copied"]]
                _scatter(ax, xy, kind, ["copied", "new"], {"copied": "tab:green", "new": "tab:red"})
                ax.set_title(f"{panel['name']}: copied vs new")
        axes[r][0].set_ylabel(f"PC2 ({ratios[1]:.1%})")
    for ax in axes[1]:
        ax.set_xlabel(f"PC1 ({ratios[0]:.1%})")
    fig.suptitle(title or "PCA of the token embeddings (fitted on the source's non-special pieces)")
    save_figure(fig, out_path, dpi=110)  # atomic: no partial figure under the final name
    return {
        "file": out_path.name,
        "explained_variance": ratios,
        "points": {"source": len(panels[0]["xy"]), "target": len(panels[1]["xy"])},
        "scripts": colored,
    }


def _palette(n: int) -> list:
    from matplotlib import colormaps

    strong, light = colormaps["tab10"], colormaps["tab20"]  # tab10 first, then tab20's lighter shades
    return [strong(k) if k < 10 else light(2 * ((k - 10) % 10) + 1) for k in range(n)]


def _scatter(ax, xy, labels: list, order: list, colors: Mapping, other: str | None = None) -> None:
    """One scatter per label in `order` (None = every label not in `order`, drawn grey as `other`)."""
    known = {o for o in order if o is not None}
    for lab in order:
        mask = [(x not in known) if lab is None else (x == lab) for x in labels]
        pts = xy[mask]
        if len(pts) == 0:
            continue
        color = "lightgrey" if lab is None else colors[lab]
        ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.6, color=color, label=f"{other if lab is None else lab} "
                   f"({len(pts)})", rasterized=True, linewidths=0)
    ax.legend(loc="best", fontsize=6, markerscale=3, frameon=False)
