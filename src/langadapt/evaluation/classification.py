"""Bible book-genre classification, a Taxi1500 STAND-IN (task kind ``bible_genre``).

Taxi1500 (Ma et al., 2023) is not available offline. This stand-in keeps its shape: 6 classes,
verse-level Bible text, English training, zero-shot transfer to every other language. The label of a
verse is the genre of its book (see :data:`GENRES`), which is a different and easier labelling than
Taxi1500's topics: numbers are NOT comparable with published Taxi1500 results.

Protocol (LangSAMP, Appendix A "Text Classification"): a sequence classification head on the
backbone (``AutoModelForSequenceClassification`` loaded from the MLM checkpoint), trained on the pivot
(English) train split with AdamW, learning rate 1e-5, batch size 8 with gradient accumulation 2
(effective 16), at most 40 epochs; the checkpoint that is best on the pivot dev split (macro-F1) is
kept (in memory) and applied zero-shot to the test split of every language. Metric: macro-F1
(LangSAMP Table 2, "F1 score"), plus accuracy.

Data selection uses a fixed ``data_seed`` (not the job seed), so every recipe and seed sees the same
train/dev/test verses, as with a fixed benchmark; the job seed drives the head initialization, the
batch order and dropout (``torch.manual_seed(seed)``). Train and dev are balanced samples of at most
``train_per_class`` / ``dev_per_class`` pivot verses per genre; test takes at most
``test_per_class`` verses per genre per language, walking one fixed random order of all test verse
ids, so languages covering the same verses are tested on exactly the same verse ids.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.core.checks import check_ints
from langadapt.core.errors import DataError
from langadapt.core.runtime import resolve_device
from langadapt.evaluation.finetune import fine_tune
from langadapt.evaluation.metrics import accuracy, macro_f1
from langadapt.evaluation.tasks import TASKS, Task, TaskData, load_pretrained

log = logging.getLogger(__name__)

# Genre of a Bible book (Protestant order, books 1..66): (name, first book, last book).
GENRES: tuple[tuple[str, int, int], ...] = (
    ("law", 1, 5),  # Genesis .. Deuteronomy
    ("history", 6, 17),  # Joshua .. Esther
    ("wisdom_poetry", 18, 22),  # Job .. Song of Songs
    ("prophets", 23, 39),  # Isaiah .. Malachi
    ("gospels_acts", 40, 44),  # Matthew .. Acts
    ("epistles_revelation", 45, 66),  # Romans .. Revelation
)
NUM_GENRES = len(GENRES)


def book_genre(book: np.ndarray | pd.Series) -> np.ndarray:
    """Genre index (0..5) of each book number; -1 for books outside 1..66 (e.g. 0 = unknown)."""
    book = np.asarray(book, dtype=np.int64)
    genre = np.searchsorted(np.array([last for _, _, last in GENRES]), book, side="left")
    return np.where((book >= 1) & (book <= 66), genre, -1)


def balanced_sample(df: pd.DataFrame, per_class: int, rng: np.random.Generator) -> pd.DataFrame:
    """At most `per_class` random rows of each ``label``; sorted by verse id."""
    parts = []
    for _, group in df.groupby("label", sort=True):
        take = min(per_class, len(group))
        parts.append(group.iloc[np.sort(rng.choice(len(group), size=take, replace=False))])
    return pd.concat(parts).sort_values("verse_id") if parts else df.iloc[:0]


def _labelled(df: pd.DataFrame, split: str) -> pd.DataFrame:
    out = df[df["split"] == split].assign(label=book_genre(df.loc[df["split"] == split, "book"]))
    return out[out["label"] >= 0]


@TASKS.register("bible_genre")
class BibleGenre(Task):
    """Taxi1500 stand-in: 6-way Bible book-genre classification, English-trained, zero-shot."""

    kind = "bible_genre"
    inputs = frozenset({"corpora"})  # the verse-aligned corpora of the task's languages
    defaults = {
        "lr": 1e-5,  # LangSAMP App. A (Taxi1500): AdamW, learning rate 1e-5
        "batch_size": 8,  # LangSAMP App. A: batch size 8 ...
        "grad_accum": 2,  # ... with gradient accumulation 2 (effective batch 16)
        "epochs": 40,  # LangSAMP App. A: at most 40 epochs
        "max_steps": None,  # optional cap on optimizer steps (CPU-sized runs); None = no cap
        "eval_every": None,  # dev evaluation every N optimizer steps; None = at the end of each epoch
        "patience": None,  # stop after N dev evaluations without improvement; None = run the whole budget
        "weight_decay": 0.0,  # not given in the paper; XTREME-style fine-tuning default
        "max_grad_norm": 1.0,  # not given in the paper; Hugging Face Trainer default
        "train_per_class": 144,  # Taxi1500 sizes: 860 train / 106 dev / 111 test verses, ~6 x 144/18/18
        "dev_per_class": 18,
        "test_per_class": 18,
        "data_seed": 0,  # fixed sample of train/dev/test verses, the same for every seed and recipe
        "max_length": 128,  # tokens per verse (truncation)
        "eval_batch_size": 32,  # inference batch size (no effect on results)
        "device": "auto",  # "auto" = cuda if available, else cpu
    }

    def validate(self) -> None:
        p = self.params
        check_ints(p, self.kind, "max_steps", "eval_every", "patience", optional=True)
        self._positive(
            "lr",
            "batch_size",
            "grad_accum",
            "epochs",
            "max_steps",
            "eval_every",
            "patience",
            "train_per_class",
            "dev_per_class",
            "test_per_class",
            "max_length",
            "eval_batch_size",
        )

    # ---- data -------------------------------------------------------------------------------------
    def select_data(self, data: TaskData) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
        """Train and dev frames of the pivot and one test frame per language (columns incl. label)."""
        p = self.params
        pivot_path = data.corpus_paths[data.pivot]
        pivot = data.corpus(data.pivot)
        train = balanced_sample(
            _labelled(pivot, "train"), p["train_per_class"], np.random.default_rng(p["data_seed"])
        )
        dev = balanced_sample(
            _labelled(pivot, "dev"), p["dev_per_class"], np.random.default_rng(p["data_seed"] + 1)
        )
        if train["label"].nunique() < 2:
            raise DataError(f"bible_genre: the train split of {pivot_path} has verses of fewer than 2 genres")
        if dev.empty:
            raise DataError(
                f"bible_genre: the dev split of {pivot_path} has no verse of a known book (1..66)"
            )
        tests = {lang: _labelled(data.corpus(lang), "test") for lang in data.languages}
        all_ids = np.unique(np.concatenate([t["verse_id"].to_numpy() for t in tests.values()]))
        rank = pd.Series(np.random.default_rng(p["data_seed"] + 2).permutation(len(all_ids)), index=all_ids)
        for lang, t in tests.items():
            if t.empty:
                raise DataError(
                    f"bible_genre: the test split of {data.corpus_paths[lang]} has no verse of a known book"
                )
            t = t.assign(rank=rank.loc[t["verse_id"]].to_numpy()).sort_values("rank")
            tests[lang] = t.groupby("label", sort=True).head(p["test_per_class"]).sort_values("verse_id")
        counts = train["label"].value_counts().sort_index().to_dict()
        log.info(
            "bible_genre (Taxi1500 stand-in): %d train %s, %d dev, %d test verses per language (max)",
            len(train),
            counts,
            len(dev),
            max(len(t) for t in tests.values()),
        )
        return train, dev, tests

    # ---- model ------------------------------------------------------------------------------------
    dev_metric = "macro-F1"  # name (in log lines) of the dev score that selects the checkpoint

    def _dev_score(self, gold: np.ndarray, pred: np.ndarray) -> float:
        """Score of a dev evaluation; the checkpoint with the highest one is kept."""
        return macro_f1(gold, pred)

    def _text_length(self, text: Any) -> int:
        """Sort key of an input for length-sorted inference batches."""
        return len(text)

    def run(self, model_dir: Path, data: TaskData, seed: int) -> list[dict[str, Any]]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        p = self.params
        train, dev, tests = self.select_data(data)
        device = resolve_device(p["device"])
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        torch.manual_seed(seed)  # head initialization, then batch order and dropout
        model = load_pretrained(
            AutoModelForSequenceClassification,
            model_dir,
            (r"^classifier\.", r"(^|\.)pooler\."),
            num_labels=NUM_GENRES,
        ).to(device)
        best = self._train(model, tokenizer, train, dev, seed)
        model.load_state_dict(best)
        rows: list[dict[str, Any]] = []
        for lang, test in tests.items():
            pred = self._predict(model, tokenizer, test["text"].tolist())
            gold = test["label"].to_numpy()
            f1, acc = macro_f1(gold, pred), accuracy(gold, pred)
            rows += [
                {"language": lang, "metric": "macro_f1", "value": f1},
                {"language": lang, "metric": "accuracy", "value": acc},
            ]
            log.info(
                "bible_genre (Taxi1500 stand-in) %s: %d verses, macro-F1 %.3f, accuracy %.3f",
                lang,
                len(test),
                f1,
                acc,
            )
        return rows

    def _batch(self, tokenizer: Any, texts: list[str], device: Any) -> dict[str, Any]:
        enc = tokenizer(
            texts, truncation=True, max_length=self.params["max_length"], padding=True, return_tensors="pt"
        )
        return {
            k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")
        }

    def _train(self, model: Any, tokenizer: Any, train: pd.DataFrame, dev: pd.DataFrame, seed: int) -> dict:
        """Fine-tune (`langadapt.evaluation.finetune`); return the state dict (on CPU) with the best dev score."""
        import torch

        device = next(model.parameters()).device
        texts, labels = train["text"].tolist(), torch.tensor(train["label"].to_numpy(), dtype=torch.long)

        def group_loss(group: list[list[int]]) -> bool:
            n_items = sum(len(b) for b in group)
            for idx in group:  # loss weighted by items so that a short last group is not over-weighted
                out = model(**self._batch(tokenizer, [texts[i] for i in idx], device), labels=labels[idx].to(device))
                (out.loss * len(idx) / n_items).backward()
            return True

        def dev_score() -> float:
            return self._dev_score(dev["label"].to_numpy(), self._predict(model, tokenizer, dev["text"].tolist()))

        return fine_tune(model, len(texts), group_loss, dev_score, self.params, seed, self.kind, self.dev_metric)

    def _predict(self, model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
        """Predicted class of each text (length-sorted batches, inference mode)."""
        import torch

        model.eval()
        device = next(model.parameters()).device
        order = np.argsort([-self._text_length(t) for t in texts], kind="stable")
        pred = np.zeros(len(texts), dtype=np.int64)
        bs = self.params["eval_batch_size"]
        with torch.inference_mode():
            for start in range(0, len(texts), bs):
                idx = order[start : start + bs]
                logits = model(**self._batch(tokenizer, [texts[i] for i in idx], device)).logits
                pred[idx] = logits.argmax(dim=-1).cpu().numpy()
        return pred
