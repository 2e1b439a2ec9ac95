"""The `tokenizer` rule: train a SentencePiece vocabulary on the corpora or fetch a pretrained fast tokenizer,
and write per-language fertility / UNK rate on the dev splits (`stats.csv`)."""

from __future__ import annotations

import logging
from pathlib import Path

from langadapt.core.atomic import atomic_dir
from langadapt.core.errors import ConfigError
from langadapt.data.corpus import SplitTexts, corpus_texts_by_lang

log = logging.getLogger(__name__)


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
    from langadapt.models.tokenization import load_hf_tokenizer, write_tokenizer_stats

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

    from langadapt.models.tokenization import train_sentencepiece, write_tokenizer_stats

    train = {lang: SplitTexts(path, "train") for lang, path in corpus_paths.items()}  # read as sampled
    held = corpus_texts_by_lang(corpus_paths, split="dev")
    with atomic_dir(out_dir) as tmp:
        train_sentencepiece(
            train, tmp, vocab_size=spec["vocab_size"], model_type=spec.get("model_type", "unigram"),
            character_coverage=spec.get("character_coverage", 0.9995), seed=spec.get("seed", 0),
            max_sentences=spec.get("max_sentences"), alpha=spec.get("alpha"),
        )
        tok = AutoTokenizer.from_pretrained(tmp)
        stats = write_tokenizer_stats(tok, held, tmp / "stats.csv")
        log.info("tokenizer stats on dev splits:\n%s", stats.to_string(index=False))
