"""Figures of the evaluation harness beyond the summary bar chart (``aggregate.plot_results``).

* :func:`plot_langsamp_embeddings`: PCA of a LangSAMP model's language and script embedding tables,
  two panels with points labelled by code (LangSAMP paper, Figure 3).
* :func:`similarity_matrix` / :func:`plot_similarity`: mean cosine similarity of parallel sentences
  between every two languages (LangSAMP slides, "Similarity of Parallel Sentences Across Languages"),
  and its difference to a baseline model (the slides' "improvement").
* :func:`plot_per_language`: one task's metric per language, one bar per recipe.

All PNGs are written atomically (temporary file + rename) and rendered without pyplot (Agg).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from langadapt.core.atomic import atomic_file, save_figure
from langadapt.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TABLE_TITLES = {"language_embeddings": "language embeddings", "script_embeddings": "script embeddings"}
MAP_KEYS = {"language_embeddings": "languages", "script_embeddings": "scripts"}


# ------------------------------------------------------------------------------ LangSAMP embeddings
def pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal-component coordinates of the rows of `x` (centred; numpy SVD).

    Fewer than two components available (one row, or rank < 2) leaves the missing axes at zero.
    Signs are fixed so that the largest-magnitude loading of each component is positive."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0, keepdims=True)
    out = np.zeros((x.shape[0], 2))
    if x.shape[0] < 2:
        return out
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    for i in range(k):
        sign = np.sign(vt[i, np.argmax(np.abs(vt[i]))]) or 1.0
        out[:, i] = u[:, i] * s[i] * sign
    return out


def langsamp_tables(model_dir: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """``{table name: (codes in row order, matrix)}`` of the LangSAMP tables saved beside a model.

    DataError when the model has no LangSAMP tables or their id maps do not match them."""
    from langadapt.train.objective import MAPS_FILE, TABLES_FILE, read_tables

    model_dir = Path(model_dir)
    saved = read_tables(model_dir)
    if saved is None:
        raise DataError(
            f"{model_dir} has no LangSAMP tables ({TABLES_FILE} + {MAPS_FILE}): only a model pretrained "
            "with `langsamp` set to language, script or both has them"
        )
    tables, meta = saved
    out = {}
    for name in ("language_embeddings", "script_embeddings"):
        if name not in tables:
            continue
        ids = meta.get(MAP_KEYS[name])
        matrix = tables[name].float().numpy()
        if not isinstance(ids, dict) or sorted(ids.values()) != list(range(matrix.shape[0])):
            raise DataError(
                f"{model_dir / MAPS_FILE}: the {MAP_KEYS[name]} id map does not index the "
                f"{matrix.shape[0]} rows of {name} in {model_dir / TABLES_FILE}"
            )
        out[name] = (sorted(ids, key=ids.get), matrix)
    if not out:
        raise DataError(f"{model_dir / TABLES_FILE} holds neither language nor script embeddings")
    return out


def plot_langsamp_embeddings(model_dir: Path, out_png: Path) -> Path:
    """PCA (2 components) of the language and of the script embedding table, one panel each, every
    point labelled by its code (LangSAMP Figure 3). A variant with one table gives one panel."""
    from matplotlib.figure import Figure

    tables = langsamp_tables(model_dir)
    fig = Figure(figsize=(6.0 * len(tables), 5.5), layout="constrained")
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    for ax, (name, (codes, matrix)) in zip(axes, tables.items(), strict=True):
        xy = pca_2d(matrix)
        ax.scatter(xy[:, 0], xy[:, 1], s=18)
        for code, (x, y) in zip(codes, xy, strict=True):
            ax.annotate(code, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{TABLE_TITLES[name]} ({len(codes)}), PCA")
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        ax.margins(0.15)
    fig.suptitle(f"LangSAMP embeddings of {Path(model_dir)}", fontsize=9)
    return save_figure(fig, out_png)


# ------------------------------------------------------------------ cross-language sentence similarity
def parallel_sentences(
    parallel_path: Path,
    languages: Sequence[str],
    pivot: str,
    max_sentences: int,
    seed: int,
    split: str | None = "test",
) -> dict[str, list[str]]:
    """The same verses in every language of `languages` (the pivot's text from the pairs' source side):
    at most `max_sentences` verse ids shared by all of them (a seeded sample, sorted)."""
    from langadapt.data.parallel import load_parallel

    if max_sentences < 1:
        raise ConfigError(f"max_sentences must be >= 1, got {max_sentences}")
    languages = list(dict.fromkeys(languages))
    if len(languages) < 2:
        raise ConfigError(f"a similarity matrix needs at least two languages, got {languages}")
    others = [lang for lang in languages if lang != pivot]
    df = load_parallel(parallel_path, langs=others, split=split).to_pandas()
    where = f"{parallel_path}" + (f" (split {split})" if split else "")
    by_lang = {lang: g.set_index("verse_id") for lang, g in df.groupby("lang", sort=False)}
    missing = [lang for lang in others if lang not in by_lang]
    if missing:
        raise DataError(f"{where} has no pair of {missing} with the pivot {pivot}")
    common = None
    for lang in others:
        ids = by_lang[lang].index.to_numpy()
        common = ids if common is None else np.intersect1d(common, ids)
    if common is None or len(common) == 0:
        raise DataError(f"{where}: no verse is shared by all of {others}")
    common = np.sort(common)
    if len(common) > max_sentences:
        common = np.sort(np.random.default_rng(seed).choice(common, size=max_sentences, replace=False))
    else:
        log.info("similarity: %d verses shared by %s (fewer than %d)", len(common), others, max_sentences)
    texts = {}
    for lang in languages:
        if lang == pivot:
            texts[lang] = by_lang[others[0]].loc[common, "src_text"].tolist()
        else:
            texts[lang] = by_lang[lang].loc[common, "tgt_text"].tolist()
    return texts


def mean_pairwise_cosine(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """``out[a, b]`` = mean over rows i of cos(vectors[a][i], vectors[b][i]) (zero vectors: 0)."""
    unit = []
    for v in vectors:
        v = np.asarray(v, dtype=np.float64)
        unit.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12))
    stack = np.stack(unit)  # [langs, n, hidden]
    return np.einsum("anh,bnh->ab", stack, stack) / stack.shape[1]


def similarity_matrix(
    model_dir: Path,
    parallel_path: Path,
    languages: Sequence[str],
    layer: int | None,
    max_sentences: int = 100,
    seed: int = 0,
    *,
    pivot: str = "eng_Latn",
    split: str | None = "test",
    device: str = "auto",
    batch_size: int = 64,
    max_length: int = 128,
) -> np.ndarray:
    """Languages x languages matrix: the cosine similarity of the mean-pooled ``hidden_states[layer]``
    sentence vectors of two languages, averaged over the same `max_sentences` verses (shared by every
    language; English via the pairs' pivot side). `layer` None = the last layer. Symmetric, diagonal 1."""
    from langadapt.core.runtime import resolve_device
    from langadapt.evaluation.retrieval import encode_mean, load_encoder
    from langadapt.evaluation.tasks import check_layer, model_num_layers

    languages = list(dict.fromkeys(languages))
    texts = parallel_sentences(parallel_path, languages, pivot, max_sentences, seed, split)
    layer = model_num_layers(model_dir) if layer is None else int(layer)
    check_layer(model_dir, layer)
    tokenizer, model = load_encoder(Path(model_dir), layer, resolve_device(device))
    vectors = [
        encode_mean(model, tokenizer, texts[lang], layer, max_length=max_length, batch_size=batch_size,
                    desc=f"encode {lang}")
        for lang in languages
    ]
    return mean_pairwise_cosine(vectors)


def relative_improvement(matrix: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """``100 * (matrix - baseline) / |baseline|`` (percent; NaN where the baseline is ~0)."""
    matrix, baseline = np.asarray(matrix, dtype=float), np.asarray(baseline, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (matrix - baseline) / np.abs(baseline)
    out[np.abs(baseline) < 1e-9] = np.nan
    return out


def plot_similarity(
    matrix: np.ndarray, langs: Sequence[str], out_png: Path, baseline: np.ndarray | None = None,
    title: str = "", baseline_name: str = "baseline",
) -> Path:
    """Heatmap of a similarity matrix (values printed in the cells); with `baseline` (same shape) a
    second heatmap of the improvement over the baseline in percent (``relative_improvement``, as in
    the LangSAMP slides), diverging colours centred on 0."""
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype=float)
    langs = list(langs)
    if matrix.shape != (len(langs), len(langs)):
        raise ValueError(f"similarity matrix of shape {matrix.shape} for {len(langs)} languages")
    panels = [(matrix, title or "cosine similarity", "viridis", None, "{:.2f}")]
    if baseline is not None:
        baseline = np.asarray(baseline, dtype=float)
        if baseline.shape != matrix.shape:
            raise ValueError(f"baseline shape {baseline.shape} differs from the matrix shape {matrix.shape}")
        gain = relative_improvement(matrix, baseline)
        lim = max(float(np.nanmax(np.abs(gain))) if np.isfinite(gain).any() else 0.0, 1e-6)
        panels.append((gain, f"improvement over {baseline_name} (%)", "RdBu", (-lim, lim), "{:+.2f}"))
    side = max(4.0, 0.55 * len(langs) + 2.0)
    fig = Figure(figsize=(side * len(panels) + 1.0, side), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (values, name, cmap, lims, fmt) in zip(axes, panels, strict=True):
        vmin, vmax = lims if lims else (None, None)
        im = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_xticks(range(len(langs)), langs, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(langs)), langs, fontsize=8)
        if len(langs) <= 20:
            for i in range(len(langs)):
                for j in range(len(langs)):
                    if not np.isfinite(values[i, j]):
                        continue
                    r, g, b, _ = im.cmap(im.norm(values[i, j]))
                    dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if dark else "black")
        ax.set_title(name, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    return save_figure(fig, out_png)


def write_matrix_csv(matrix: np.ndarray, langs: Sequence[str], out_csv: Path) -> Path:
    """The matrix as CSV (index and header = language codes), written atomically."""
    df = pd.DataFrame(np.asarray(matrix), index=pd.Index(list(langs), name="language"), columns=list(langs))
    with atomic_file(out_csv) as tmp:
        df.to_csv(tmp, float_format="%.6f")
    return Path(out_csv)


# ------------------------------------------------------------------------------- per-language bars
def plot_per_language(rows_df: pd.DataFrame, task: str, metric: str, out_png: Path, scale: float = 100.0) -> Path:
    """Grouped bars of one task and metric: languages (then ``avg``) on the x axis, one bar per recipe
    (mean over seeds, sample sd as error bar); rows as read by ``aggregate.collect``."""
    from matplotlib.figure import Figure

    from langadapt.report.aggregate import AVG, seed_stats

    sub = rows_df[(rows_df["task"] == task) & (rows_df["metric"] == metric)]
    if sub.empty:
        raise DataError(f"no result rows of task {task!r} with metric {metric!r}")
    stats = seed_stats(sub)
    langs = sorted(set(stats["language"]) - {AVG}) + [AVG]
    recipes = sorted(stats["recipe"].unique())
    width = 0.8 / len(recipes)
    x = np.arange(len(langs))
    fig = Figure(figsize=(min(40.0, max(6.0, 0.3 * len(langs) * len(recipes) + 2)), 4.0), layout="constrained")
    ax = fig.subplots()
    for i, recipe in enumerate(recipes):
        r = stats[stats["recipe"] == recipe].set_index("language").reindex(langs)
        ax.bar(x + (i - (len(recipes) - 1) / 2) * width, r["mean"] * scale, width,
               yerr=r["sd"].fillna(0.0) * scale, label=recipe, capsize=2)
    ax.set_xticks(x, langs, rotation=60, ha="right", fontsize=8)
    ax.set_title(f"{task}: {metric} per language")
    ax.set_ylabel(f"{metric} (x{scale:g})" if scale != 1 else metric)
    ax.legend(fontsize=7, ncols=min(len(recipes), 4))
    return save_figure(fig, out_png)


def plot_all_per_language(rows_df: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One ``{task}.png`` per task (its main metric, ``aggregate.main_metric``) in `out_dir`."""
    from langadapt.report.aggregate import main_metric

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task in sorted(rows_df["task"].unique()):
        metric = main_metric(rows_df.loc[rows_df["task"] == task, "metric"])
        written.append(plot_per_language(rows_df, task, metric, out_dir / f"{task}.png"))
    return written


def plot_loss_curves(run_dirs: Sequence[Path], out_png: Path) -> None:
    """One panel per trained model directory: training loss against step (from its loss.csv)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = []
    for d in run_dirs:
        path = Path(d) / "loss.csv"
        if not path.exists():
            raise DataError(f"no loss log in trained model directory {d} (expected {path})")
        df = pd.read_csv(path)
        frames.append((f"{Path(d).parent.name}/{Path(d).name}", df))
    n = max(1, len(frames))
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    for ax, (name, df) in zip(axes[0], frames, strict=False):
        ax.plot(df["step"], df["loss"], lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
