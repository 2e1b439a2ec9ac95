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

``source`` (default: the pivot) is the language fine-tuned on; every verse-aligned corpus has the same
train/dev/test verses, so any language can be the source. ``source: donor`` is LangSAMP §5.3's donor
selection (:mod:`langadapt.evaluation.donor`): each target is scored by the model fine-tuned on the donor
whose LangSAMP language embedding is the most cosine-similar to its own, among ``donors`` that are among the
job's languages (the others are dropped with a warning).

``protocol: probe`` replaces fine-tuning by a linear probe, for CPU-sized runs where a few dozen fine-tuning
steps stay at chance: the encoder is frozen, each verse is the mean of its tokens' states at ``probe_layer``
(the last layer by default; pooling as in SR-B), and a standardised logistic regression is fitted on the
source's train verses for each of ``probe_c`` (inverse regularisation); the one with the best source-dev
macro-F1 is kept (the probe's analogue of LangSAMP's best-dev checkpoint) and applied zero-shot. It measures
how well the frozen representations transfer, not the papers' fine-tuned scores; it is deterministic.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from langadapt.core.checks import check_int, check_ints
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.runtime import resolve_device
from langadapt.evaluation.donor import PAPER_DONORS, check_source_params, plan_sources, run_plan
from langadapt.evaluation.finetune import fine_tune
from langadapt.evaluation.metrics import accuracy, macro_f1
from langadapt.evaluation.tasks import TASKS, Task, TaskData, check_layer, load_pretrained, model_num_layers

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


@dataclass
class LinearProbe:
    """A classifier on a frozen encoder's mean-pooled states (``protocol: probe``)."""

    encoder: Any
    tokenizer: Any
    layer: int
    classifier: Any
    max_length: int
    batch_size: int

    def features(self, texts: list[str]) -> np.ndarray:
        from langadapt.evaluation.retrieval import encode_mean

        return encode_mean(self.encoder, self.tokenizer, texts, self.layer, max_length=self.max_length,
                           batch_size=self.batch_size, desc="probe features")  # fmt: skip

    def predict(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.classifier.predict(self.features(texts)), dtype=np.int64)


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
        "log_every": 10,  # a progress line (loss, examples/s, ETA) + tracker point every N optimizer steps
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
        "source": None,  # language fine-tuned on; None = the pivot; "donor" = LangSAMP §5.3 per target
        "donors": list(PAPER_DONORS),  # source "donor": the candidates (LangSAMP §5.3: its 10 donors)
        "fallback_source": None,  # source "donor": targets without an embedding; None = the pivot
        # finetune = LangSAMP App. A; probe = logistic regression on frozen mean-pooled states (CPU-sized runs)
        "protocol": "finetune",
        "probe_layer": None,  # probe: the hidden layer pooled; None = the last
        "probe_c": [0.01, 0.1, 1.0, 10.0],  # probe: inverse regularisation strengths tried; best source dev kept
    }

    def validate(self) -> None:
        p = self.params
        check_int(p["log_every"], f"{self.kind}.log_every", low=1)
        check_ints(p, self.kind, "max_steps", "eval_every", "patience", optional=True)
        placeholder = "eng_Latn"  # None = the pivot, known only at run time
        check_source_params(self.kind, {**p, "source": p["source"] or placeholder,
                                        "fallback_source": p["fallback_source"] or placeholder})
        if p["protocol"] not in ("finetune", "probe"):
            raise ConfigError(f"bible_genre.protocol must be finetune or probe, got {p['protocol']!r}")
        check_ints(p, self.kind, "probe_layer", optional=True)  # positive or null
        c = p["probe_c"]
        if not isinstance(c, list) or not c or not all(isinstance(x, int | float) and x > 0 for x in c):
            raise ConfigError(f"bible_genre.probe_c must be a non-empty list of positive numbers, got {c!r}")
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
    def source_frames(self, data: TaskData, lang: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
        """Balanced train and dev frames of a source language and the label names (DataError naming its
        corpus when unusable)."""
        if lang not in data.corpus_paths:
            raise DataError(f"bible_genre: source {lang} is not among the job's languages {data.languages}")
        p = self.params
        path, corpus = data.corpus_paths[lang], data.corpus(lang)
        train = balanced_sample(_labelled(corpus, "train"), p["train_per_class"], np.random.default_rng(p["data_seed"]))
        dev = balanced_sample(_labelled(corpus, "dev"), p["dev_per_class"], np.random.default_rng(p["data_seed"] + 1))
        if train["label"].nunique() < 2:
            raise DataError(f"bible_genre: the train split of {path} has verses of fewer than 2 genres")
        if dev.empty:
            raise DataError(f"bible_genre: the dev split of {path} has no verse of a known book (1..66)")
        log.info("bible_genre (Taxi1500 stand-in): source %s, %d train %s, %d dev verses", lang, len(train),
                 train["label"].value_counts().sort_index().to_dict(), len(dev))  # fmt: skip
        return train, dev, [name for name, _, _ in GENRES]

    def test_frames(self, data: TaskData) -> dict[str, pd.DataFrame]:
        """One test frame per language: at most ``test_per_class`` verses per genre, walking one fixed random
        order of all test verse ids (the same verses in every language that has them)."""
        p = self.params
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
        log.info("bible_genre (Taxi1500 stand-in): %d test verses per language (max)",
                 max(len(t) for t in tests.values()))  # fmt: skip
        return tests

    # ---- model ------------------------------------------------------------------------------------
    dev_metric = "macro-F1"  # name (in log lines) of the dev score that selects the checkpoint

    def _dev_score(self, gold: np.ndarray, pred: np.ndarray) -> float:
        """Score of a dev evaluation; the checkpoint with the highest one is kept."""
        return macro_f1(gold, pred)

    def _text_length(self, text: Any) -> int:
        """Sort key of an input for length-sorted inference batches."""
        return len(text)

    def run(self, model_dir: Path, data: TaskData, seed: int) -> list[dict[str, Any]]:
        """Fine-tune one model per source of the plan (``source``, or each target's donor), score its targets."""
        tests = self.test_frames(data)  # data errors before the model loads
        sources: dict[str, tuple[pd.DataFrame, pd.DataFrame, list[str]] | None] = {}

        def usable(lang: str) -> bool:
            if lang not in sources:
                try:
                    sources[lang] = self.source_frames(data, lang)
                except DataError as exc:
                    log.warning("%s: no usable train + dev data for %s (%s)", self.kind, lang, exc)
                    sources[lang] = None
            return sources[lang] is not None

        p = self.params  # a source left out (None) is the pivot
        params = {**p, "source": p["source"] or data.pivot, "fallback_source": p["fallback_source"] or data.pivot}
        plan = plan_sources(self.kind, params, model_dir, list(tests), usable)
        for source in plan.groups:  # every data error before the first model is fine-tuned
            if sources.get(source) is None:
                sources[source] = self.source_frames(data, source)
        return run_plan(plan, lambda source: self._fit(model_dir, *sources[source], seed),  # type: ignore[misc]
                        lambda fitted, source, lang: self._score(*fitted, tests[lang], source, lang))

    def _fit(
        self, model_dir: Path, train: pd.DataFrame, dev: pd.DataFrame, label_names: list[str], seed: int
    ) -> tuple[Any, Any]:
        """A sequence classification model fine-tuned on (train, dev), best dev checkpoint; its tokenizer (or,
        ``protocol: probe``, a :class:`LinearProbe` and None)."""
        if self.params.get("protocol", "finetune") == "probe":
            return self._fit_probe(model_dir, train, dev), None
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        torch.manual_seed(seed)  # head initialization, then batch order and dropout
        model = load_pretrained(
            AutoModelForSequenceClassification,
            model_dir,
            (r"^classifier\.", r"(^|\.)pooler\."),
            num_labels=len(label_names),
        ).to(resolve_device(self.params["device"]))
        model.load_state_dict(self._train(model, tokenizer, train, dev, seed))
        return model, tokenizer

    def _score(self, model: Any, tokenizer: Any, test: pd.DataFrame, source: str, lang: str) -> list[dict[str, Any]]:
        """``macro_f1`` and ``accuracy`` rows of `lang`."""
        pred = self._predict(model, tokenizer, test["text"].tolist())
        gold = test["label"].to_numpy()
        f1, acc = macro_f1(gold, pred), accuracy(gold, pred)
        log.info("%s %s -> %s: %d test examples, macro-F1 %.3f, accuracy %.3f", self.kind, source, lang,
                 len(test), f1, acc)  # fmt: skip
        return [
            {"language": lang, "metric": "macro_f1", "value": f1},
            {"language": lang, "metric": "accuracy", "value": acc},
        ]

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

        def group_loss(group: list[list[int]]) -> float:
            n_items, total = sum(len(b) for b in group), 0.0
            for idx in group:  # loss weighted by items so that a short last group is not over-weighted
                out = model(**self._batch(tokenizer, [texts[i] for i in idx], device), labels=labels[idx].to(device))
                part = out.loss * len(idx) / n_items
                part.backward()
                total += float(part.detach())
            return total

        def dev_score() -> float:
            return self._dev_score(dev["label"].to_numpy(), self._predict(model, tokenizer, dev["text"].tolist()))

        return fine_tune(model, len(texts), group_loss, dev_score, self.params, seed, self.kind, self.dev_metric)

    def _fit_probe(self, model_dir: Path, train: pd.DataFrame, dev: pd.DataFrame) -> LinearProbe:
        """The logistic-regression probe of the best source-dev macro-F1 over ``probe_c`` (frozen encoder,
        loaded once per model directory)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from langadapt.evaluation.retrieval import load_encoder

        p = self.params
        layer = p["probe_layer"] or model_num_layers(model_dir)
        check_layer(model_dir, layer)
        cached = getattr(self, "_encoder", None)
        if cached is None or cached[0] != (Path(model_dir), layer):
            self._encoder = ((Path(model_dir), layer), load_encoder(model_dir, layer, resolve_device(p["device"])))
        tokenizer, encoder = self._encoder[1]
        probe = LinearProbe(encoder, tokenizer, layer, None, p["max_length"], p["eval_batch_size"])
        x_train, x_dev = probe.features(train["text"].tolist()), probe.features(dev["text"].tolist())
        best, best_score = None, -1.0
        for c in p["probe_c"]:
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=float(c), max_iter=2000))
            clf.fit(x_train, train["label"].to_numpy())
            score = self._dev_score(dev["label"].to_numpy(), clf.predict(x_dev))
            log.info("bible_genre probe (layer %d): C %g, dev %s %.4f", layer, c, self.dev_metric, score)
            if score > best_score:  # ties: the first (the strongest regularisation)
                best, best_score = clf, score
        probe.classifier = best
        return probe

    def _predict(self, model: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
        """Predicted class of each text (length-sorted batches, inference mode)."""
        if isinstance(model, LinearProbe):
            return model.predict(texts)
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
