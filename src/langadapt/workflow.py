"""Stage-level helpers that combine library pieces for one workflow job (kept out of scripts/)."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from langadapt.atomic import atomic_dir
from langadapt.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def corpus_texts(paths: Sequence[str | os.PathLike], split: str | None = None) -> Iterator[str]:
    """Texts of several corpus files (all splits by default), one language after another."""
    from langadapt.data.corpus import load_corpus

    for path in paths:
        table = load_corpus(Path(path), split=split)
        yield from table.column("text").to_pylist()


def corpus_texts_by_lang(paths: dict[str, Path], split: str | None = "train") -> dict[str, list[str]]:
    return {lang: list(corpus_texts([p], split=split)) for lang, p in paths.items()}


def tokenizer_job(spec: dict, corpus_paths: dict[str, Path], out_dir: Path,
                  log: logging.Logger = log) -> None:
    """The `tokenizer` rule: dispatch on ``spec["kind"]`` (``sentencepiece`` by default, or ``hf``)."""
    kind = spec.get("kind", "sentencepiece")
    if kind == "sentencepiece":
        train_tokenizer_job(spec, corpus_paths, out_dir, log=log)
    elif kind == "hf":
        hf_tokenizer_job(spec, corpus_paths, out_dir, log=log)
    else:
        raise ConfigError(f"unknown tokenizer kind {kind!r}; known: sentencepiece, hf")


def hf_tokenizer_job(spec: dict, corpus_paths: dict[str, Path], out_dir: Path,
                     log: logging.Logger = log) -> None:
    """Fetch a pretrained fast tokenizer (hub id or local directory) into a tokenizer directory.

    ``stats.csv`` covers the languages of `corpus_paths` (dev splits); with none it holds the header only.
    """
    from langadapt.tokenization import load_hf_tokenizer, write_tokenizer_stats

    tok = load_hf_tokenizer(
        spec["name_or_path"], revision=spec.get("revision"), cache_dir=spec.get("cache_dir")
    )
    held = corpus_texts_by_lang(corpus_paths, split="dev")
    with atomic_dir(out_dir) as tmp:
        tok.save_pretrained(str(tmp))
        stats = write_tokenizer_stats(tok, held, tmp / "stats.csv")
        log.info("tokenizer %s (%d pieces); stats on dev splits:\n%s", spec["name_or_path"], len(tok),
                 stats.to_string(index=False))


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


def init_job(spec: dict, model_dir: Path, tokenizer_dir: Path, out_dir: Path, provenance: dict, *,
             texts: dict[str, Path] | None = None, word_vectors: Sequence[Path] = (),
             hypernet_dir: Path | None = None, threads: int = 1, log: logging.Logger = log) -> dict:
    """The `init_model` rule: replace/extend the vocabulary and initialize embeddings with the recipe's
    method chain; `texts` (lang -> corpus), `word_vectors` (directories named like their config entries)
    and `hypernet_dir` are given when a method needs them."""
    from langadapt.embedding_init import InitResources, initialize_embeddings

    resources = InitResources(
        texts=corpus_texts_by_lang(texts, split="train") if texts else None,
        word_vectors={Path(p).name: Path(p) for p in word_vectors},
        hypernet_dir=Path(hypernet_dir) if hypernet_dir else None,
        threads=threads,
    )
    Path(out_dir).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out_dir).parent) as scratch:
        resources.workdir = Path(scratch)
        stats = initialize_embeddings(model_dir, tokenizer_dir, spec["init"], out_dir, seed=spec.get("seed", 0),
                                      provenance=provenance, vocab=spec.get("vocab", "replace"),
                                      resources=resources, diagnostics=True,  # + pca.png
                                      factorize=spec.get("factorize"))  # + factorized.safetensors
    log.info("init stats: %s", stats)
    return stats


def pretrain_job(spec: dict, model_dir: Path, corpus_paths: dict[str, Path], out_dir: Path, run_dir: Path,
                 inventory: Sequence[str] | None, provenance: dict, threads: int = 1,
                 gpus: int | None = None, log: logging.Logger = log) -> None:
    """Continued pretraining in this process, or under ``torchrun`` when it needs several processes.

    `spec` is the pretraining stage spec (its ``name`` / ``objective`` / ``languages`` keys are not
    trainer keys). The number of processes is the spec's ``processes``, else one per allocated GPU
    (`gpus`: the rule's ``gpu`` resource) that CUDA sees.
    """
    from langadapt.train.distributed import launch, world_size_for
    from langadapt.train.mlm import pretrain, resolve_config

    cfg = {k: v for k, v in spec.items() if k not in ("name", "objective", "languages")}
    nproc = world_size_for(resolve_config(cfg)["processes"], gpus)
    inventory = list(inventory) if inventory else None
    if nproc > 1:
        log.info("pretraining with %d data-parallel processes", nproc)
        kwargs = {"model_dir": str(model_dir), "corpus_paths": {k: str(v) for k, v in corpus_paths.items()},
                  "out_dir": str(out_dir), "run_dir": str(run_dir), "cfg": cfg, "provenance": provenance,
                  "inventory": inventory}
        launch("pretrain", kwargs, nproc, Path(run_dir).parent / f".{Path(run_dir).name}-launch",
               extra_env={"LANGADAPT_THREADS": str(max(1, threads // nproc))})
    else:
        pretrain(model_dir, corpus_paths, out_dir, run_dir, cfg, provenance=provenance, inventory=inventory)


def hypernet_job(spec: dict, model_dir: Path, word_vectors_dir: Path, out_dir: Path,
                 threads: int = 1, log: logging.Logger = log) -> dict:
    """The `hypernet` rule: HyperOFA's hypernetwork from external word vectors (``results/word_vectors/
    {spec["word_vectors"]}``) to the base model's factorized token embeddings (`langadapt.hypernet`)."""
    from langadapt.hypernet import train_hypernetwork

    metrics = train_hypernetwork(model_dir, word_vectors_dir, out_dir, spec.get("train", {}),
                                 word_vectors_name=spec.get("word_vectors"))
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
