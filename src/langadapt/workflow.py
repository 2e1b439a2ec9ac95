"""Stage-level helpers that combine library pieces for one workflow job (kept out of scripts/)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from langadapt.atomic import atomic_dir
from langadapt.errors import DataError

log = logging.getLogger(__name__)


def corpus_texts(paths: Sequence[str | os.PathLike], split: str | None = None) -> Iterator[str]:
    """Texts of several corpus files (all splits by default), one language after another."""
    from langadapt.data.corpus import load_corpus

    for path in paths:
        table = load_corpus(Path(path), split=split)
        yield from table.column("text").to_pylist()


def corpus_texts_by_lang(paths: dict[str, Path], split: str | None = "train") -> dict[str, list[str]]:
    return {lang: list(corpus_texts([p], split=split)) for lang, p in paths.items()}


def train_tokenizer_job(spec: dict, corpus_paths: dict[str, Path], out_dir: Path,
                        log: logging.Logger = log) -> None:
    """Train a new vocabulary on the train splits and write per-language fertility / UNK rate."""
    from transformers import AutoTokenizer

    from langadapt.tokenization import train_sentencepiece, write_tokenizer_stats

    train = corpus_texts_by_lang(corpus_paths, split="train")
    held = corpus_texts_by_lang(corpus_paths, split="dev")
    with atomic_dir(out_dir) as tmp:
        train_sentencepiece(
            train, tmp, vocab_size=spec["vocab_size"], model_type=spec.get("model_type", "unigram"),
            character_coverage=spec.get("character_coverage", 0.9995), seed=spec.get("seed", 0),
            max_sentences=spec.get("max_sentences"),
        )
        tok = AutoTokenizer.from_pretrained(tmp)
        stats = write_tokenizer_stats(tok, held, tmp / "stats.csv")
        log.info("tokenizer stats on dev splits:\n%s", stats.to_string(index=False))


def hypernet_job(spec: dict, model_dir: Path, corpus_paths: Sequence[str], out_dir: Path,
                 threads: int = 1, log: logging.Logger = log) -> dict:
    """Word vectors from the corpora (fastText), then the hypernetwork word vectors -> embeddings."""
    from langadapt.hypernet import build_word_vectors, train_hypernetwork

    texts = list(corpus_texts(corpus_paths, split="train"))
    with atomic_dir(out_dir) as tmp, tempfile.TemporaryDirectory(dir=out_dir.parent) as scratch:
        wv = Path(scratch) / "word_vectors.bin"
        build_word_vectors(texts, wv, threads=threads, **spec.get("word_vectors", {}))
        metrics = train_hypernetwork(model_dir, wv, tmp, spec.get("train", {}))
        log.info("hypernetwork: %s", metrics)
    return metrics


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
