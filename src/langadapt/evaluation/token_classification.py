"""Token classification (NER and POS tagging), task kind ``token_classification``.

The data come from a dataset spec of :mod:`langadapt.evaluation.datasets` (``wikiann``, ``ud``,
``turkish_treebanks``, ``hironsan``): sentences as ``words`` with one tag per word.

Two protocols:

``zero_shot`` (LangSAMP App. A "Sequence Labeling"; HyperOFA Sec. 4 "Sequence Labeling"; realignment
App. A.6): one model is fine-tuned on the ``source`` language's train split, the checkpoint best on the
source dev split is kept (in memory) and applied to the test split of every evaluated language, the
source included (the papers report English too). ``source: donor`` (LangSAMP §5.3) scores each target
with a model fine-tuned on its closest donor language instead (one model per donor used; see
:mod:`langadapt.evaluation.donor`).

``in_language`` (vocabulary-specialization paper, Sec. 4 "Evaluation" and App. B): for every evaluated
language a fresh model is fine-tuned on that language's train split, selected on its dev split and
tested on its test split.

Model: ``AutoModelForTokenClassification`` loaded from the MLM checkpoint (head newly initialized). One
prediction per word: the word vector is the hidden state of its FIRST subword (``word_pooling: first``,
the standard XTREME/Glot500 practice: only the first subword carries the label, the others are ignored)
or the MEAN of its subwords' hidden states (``word_pooling: mean``, vocabulary paper); the model's own
dropout + classifier are applied to the word vectors. For ``first`` this is exactly what
``AutoModelForTokenClassification`` computes with labels on first subwords and -100 elsewhere.
Words without any subword (cut by ``max_length`` or tokenized to nothing) get a fallback prediction
(``O`` if the tag set has it, else the most frequent training tag) and are still scored.

Metrics (per language): ``accuracy`` = tagging accuracy over all words; ``f1`` = micro entity F1 of
seqeval for BIO tag sets (``f1_mode: default`` is seqeval's default, conlleval-compatible chunking as
the XTREME ``run_tag.py`` code used by Glot500/LangSAMP/HyperOFA calls it; ``strict`` = IOB2 strict
mode, where an I- without a matching B- starts no entity). For a tag set without B-/I- prefixes (POS),
``metric: auto`` reports and selects on accuracy; ``metric: f1`` also reports XTREME's seqeval F1 on
the raw tags (what LangSAMP/HyperOFA tables call POS "F1"; seqeval then merges runs of identical tags
into one chunk, so it is not a per-tag F1). The dev checkpoint is selected on ``f1`` for BIO tag sets
and on ``accuracy`` otherwise (``metric`` overrides).

Loss: word-level cross-entropy, normalized by the summed word weights of the optimizer step's batch.
``o_weight`` down-weights the ``O`` class (NER only): a number is a fixed weight of O words;
``"balanced"`` is the vocabulary paper's rule (App. B: the O tokens of each batch are down-weighted to
have the same total influence as the entity tokens), applied per optimizer-step batch; null = 1.0 = off.

Data selection uses ``data_seed`` (not the job seed): the same sentences for every recipe and seed.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langadapt.core.checks import check_int, check_ints, is_number
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.runtime import resolve_device
from langadapt.evaluation.datasets import EvalDataset, Examples, build_dataset
from langadapt.evaluation.donor import PAPER_DONORS, SourcePlan, check_source_params, plan_sources, run_plan
from langadapt.evaluation.finetune import fine_tune
from langadapt.evaluation.tasks import TASKS, Task, TaskData, load_pretrained
from langadapt.evaluation.words import (
    POOLINGS,
    encode_words,
    weighted_loss,
    word_logits,
    word_weights,
)

log = logging.getLogger(__name__)

PROTOCOLS = ("zero_shot", "in_language")
METRICS = ("auto", "f1", "accuracy")
F1_MODES = ("default", "strict")


# ------------------------------------------------------------------------------------------ metrics
def is_bio(label_names: list[str]) -> bool:
    """True when every tag is ``O`` or ``B-X``/``I-X`` (an IOB tag set), and at least one is B-/I-."""
    prefixed = [t for t in label_names if t != "O"]
    return bool(prefixed) and all(t[:2] in ("B-", "I-") and len(t) > 2 for t in prefixed)


def entity_f1(gold: list[list[str]], pred: list[list[str]], mode: str = "default") -> float:
    """seqeval micro-averaged entity F1 (``mode``: ``default`` = conlleval chunking, ``strict`` = IOB2)."""
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    _check_pairs(gold, pred)
    if mode not in F1_MODES:
        raise ValueError(f"unknown F1 mode {mode!r}; known: {F1_MODES}")
    with warnings.catch_warnings():  # "X seems not to be NE tag" (raw POS tags) / undefined-metric warnings
        warnings.simplefilter("ignore")
        if mode == "strict":
            return float(f1_score(gold, pred, mode="strict", scheme=IOB2, zero_division=0))
        return float(f1_score(gold, pred, zero_division=0))


def tag_accuracy(gold: list[list[str]], pred: list[list[str]]) -> float:
    """Fraction of words (over all sentences) whose predicted tag is the gold tag."""
    _check_pairs(gold, pred)
    n = sum(len(g) for g in gold)
    if n == 0:
        raise ValueError("accuracy of zero words is undefined")
    return sum(a == b for g, p in zip(gold, pred, strict=True) for a, b in zip(g, p, strict=True)) / n


def _check_pairs(gold: list[list[str]], pred: list[list[str]]) -> None:
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred, strict=False)):
        raise ValueError("gold and predicted tag sequences must have the same shape")


# -------------------------------------------------------------------------------- word alignment


# ------------------------------------------------------------------------------------------- task
@dataclass
class _Split:
    words: list[list[str]]
    tags: list[list[str]]


@TASKS.register("token_classification")
class TokenClassification(Task):
    """NER / POS tagging: zero-shot transfer from a source language, or in-language fine-tuning."""

    kind = "token_classification"
    defaults = {
        "dataset": None,  # REQUIRED: dataset spec for datasets.build_dataset, e.g. {kind: wikiann}
        # zero_shot: train on `source`, best checkpoint on source dev, test all languages (LangSAMP App. A
        # "Sequence Labeling", HyperOFA Sec. 4, realignment App. A.6); in_language: train/dev/test per
        # target language (vocabulary-specialization paper, Sec. 4 "Evaluation")
        "protocol": "zero_shot",
        "source": "eng_Latn",  # LangSAMP App. A / HyperOFA Sec. 4: fine-tuned on the English train set
        # source "donor" (zero_shot): each target from its most cosine-similar donor by the evaluated model's
        # LangSAMP language embeddings (LangSAMP §5.3, Table 4); the candidate donors (default: the paper's
        # 10; those without train + dev data are dropped) and the source of targets without an embedding
        "donors": list(PAPER_DONORS),
        "fallback_source": "eng_Latn",
        "metric": "auto",  # dev-selection metric: auto = f1 for BIO tag sets, accuracy otherwise
        "f1_mode": "default",  # seqeval default (conlleval) mode, as XTREME run_tag.py (Glot500/LangSAMP code)
        "word_pooling": "first",  # first subword (XTREME/LangSAMP); "mean" = vocabulary paper
        "o_weight": None,  # null = off; number = fixed O weight; "balanced" = vocabulary paper App. B
        "lr": 2e-5,  # LangSAMP App. A "Sequence Labeling": 2e-5 (realignment App. A.6: 2e-5 too)
        "batch_size": 8,  # LangSAMP App. A: batch size 8 ...
        "grad_accum": 4,  # ... gradient accumulation 4: effective batch 32 (realignment App. A.6: 32)
        "epochs": 10,  # LangSAMP App. A: at most 10 epochs (realignment App. A.6: 5 for POS)
        "max_steps": None,  # optional cap on optimizer steps (CPU-sized runs); None = no cap
        "eval_every": None,  # dev evaluation every N optimizer steps; None = at the end of each epoch
        "log_every": 10,  # a progress line (loss, examples/s, ETA) + tracker point every N optimizer steps
        "patience": None,  # stop after N dev evaluations without improvement (vocab paper Table 7: 8 POS /
        # 4 NER epochs with eval every 2 epochs); None = no early stopping (LangSAMP: best of all epochs)
        "weight_decay": 0.0,  # not given in the papers; XTREME-style fine-tuning default
        "max_grad_norm": 1.0,  # vocabulary paper App. B Table 7: max_gradient_norm 1.0
        "max_length": 256,  # vocabulary paper Table 7: max_sequence_length 256 (realignment A.6: 200)
        "max_train_sentences": None,  # cap (seeded sample); vocabulary paper App. B caps at 32,768
        "max_dev_sentences": None,  # cap on dev sentences (seeded sample); None = all
        "max_test_sentences": None,  # cap on test sentences per language (seeded sample); None = all
        "data_seed": 0,  # fixed sentence samples, the same for every seed and recipe
        "eval_batch_size": 32,  # inference batch size (realignment App. A.6: 32; no effect on results)
        "device": "auto",  # "auto" = cuda if available, else cpu
    }

    def validate(self) -> None:
        p = self.params
        if p["dataset"] is None:
            raise ConfigError("token_classification.dataset is required (a dataset spec with a 'kind')")
        self.dataset: EvalDataset = build_dataset(p["dataset"])
        check_source_params(self.kind, p)
        if p["source"] == "donor" and p["protocol"] != "zero_shot":
            raise ConfigError("token_classification.source 'donor' needs protocol zero_shot (LangSAMP §5.3)")
        for key, known in (("protocol", PROTOCOLS), ("word_pooling", POOLINGS), ("metric", METRICS),
                           ("f1_mode", F1_MODES)):  # fmt: skip
            if p[key] not in known:
                raise ConfigError(f"token_classification.{key} must be one of {list(known)}, got {p[key]!r}")
        check_int(p["log_every"], f"{self.kind}.log_every", low=1)
        check_ints(p, self.kind, "max_steps", "eval_every", "patience", "max_train_sentences", "max_dev_sentences",
                   "max_test_sentences", optional=True)
        w = p["o_weight"]
        if (
            w is not None
            and w != "balanced"
            and (not is_number(w) or w < 0)
        ):
            raise ConfigError(
                f"token_classification.o_weight must be null, a number >= 0 or 'balanced', got {w!r}"
            )
        self._positive("lr", "batch_size", "grad_accum", "epochs", "max_steps", "eval_every", "patience",
                       "max_length", "max_train_sentences", "max_dev_sentences", "max_test_sentences",
                       "eval_batch_size")  # fmt: skip

    # ---- data -------------------------------------------------------------------------------------
    def _sample(self, ex: Examples, cap: int | None, salt: int) -> _Split:
        n = len(ex)
        idx = list(range(n))
        if cap is not None and n > cap:
            rng = np.random.default_rng([self.params["data_seed"], salt])
            idx = sorted(int(i) for i in rng.choice(n, size=cap, replace=False))
        assert ex.words is not None and ex.tags is not None
        return _Split([ex.words[i] for i in idx], [ex.tags[i] for i in idx])

    def _load(self, lang: str, split: str, required: bool) -> _Split | None:
        p = self.params
        cap = {
            "train": p["max_train_sentences"],
            "dev": p["max_dev_sentences"],
            "test": p["max_test_sentences"],
        }
        try:
            ex = self.dataset.load(lang, split)
        except DataError as exc:
            if required:
                raise
            log.warning("token_classification: %s has no usable %s split, skipped (%s)", lang, split, exc)
            return None
        if ex.shape != "tagging":
            raise ConfigError(
                f"token_classification: dataset {self.dataset.describe()} is not a tagging dataset"
            )
        self.label_names = list(ex.label_names)
        return self._sample(ex, cap[split], {"train": 0, "dev": 1, "test": 2}[split])

    @property
    def uses_pivot(self) -> bool:
        """In-language fine-tuning evaluates exactly the job's languages (the pivot only when asked for)."""
        return self.params["protocol"] != "in_language"

    def languages(self, data: TaskData) -> list[str]:
        """The task's languages that the dataset covers (DataError if none)."""
        covered = self.dataset.covers(data.languages)
        skipped = sorted(set(data.languages) - set(covered))
        if skipped:
            log.warning(
                "token_classification: %s has no data for %s (skipped)", self.dataset.describe(), skipped
            )
        if not covered:
            raise DataError(
                f"token_classification: {self.dataset.describe()} covers none of the languages {data.languages}"
            )
        return covered

    # ---- run --------------------------------------------------------------------------------------
    def run(self, model_dir: Path, data: TaskData, seed: int) -> list[dict[str, Any]]:
        p = self.params
        langs = self.languages(data)
        rows: list[dict[str, Any]] = []
        if p["protocol"] == "zero_shot":
            return self._zero_shot(model_dir, langs, seed)
        splits = {}
        for lang in langs:
            parts = [self._load(lang, s, required=False) for s in ("train", "dev", "test")]
            if all(x is not None for x in parts):
                splits[lang] = parts
        if not splits:
            raise DataError(f"token_classification: no language of {langs} has train, dev and test data")
        for lang, (train, dev, test) in splits.items():
            model, tokenizer = self._fit(model_dir, train, dev, seed, lang)
            rows += self._score(model, tokenizer, test, lang, train)
        return rows

    def _zero_shot(self, model_dir: Path, langs: list[str], seed: int) -> list[dict[str, Any]]:
        """Test every language with the model fine-tuned on its source (``source``, or its donor)."""
        tests = {lang: t for lang in langs if (t := self._load(lang, "test", required=False)) is not None}
        if not tests:
            raise DataError(f"token_classification: no test data for any of {langs}")
        sources: dict[str, tuple[_Split, _Split] | None] = {}

        def source_data(lang: str, required: bool) -> tuple[_Split, _Split] | None:
            if lang not in sources:
                if not self.dataset.covers([lang]):
                    if required:
                        raise DataError(
                            f"token_classification: {self.dataset.describe()} has no data for source {lang}"
                        )
                    sources[lang] = None
                else:
                    train = self._load(lang, "train", required=required)
                    dev = self._load(lang, "dev", required=required) if train is not None else None
                    sources[lang] = (train, dev) if train is not None and dev is not None else None
            if sources[lang] is None and required:
                raise DataError(f"token_classification: {self.dataset.describe()} has no train + dev data "
                                f"for source {lang}")  # fmt: skip
            return sources[lang]

        plan: SourcePlan = plan_sources(
            self.kind, self.params, model_dir, list(tests), lambda lang: source_data(lang, False) is not None
        )
        for source in plan.groups:  # every data error before the first model is loaded
            source_data(source, True)

        def fit(source: str) -> tuple[Any, Any, _Split]:
            train, dev = source_data(source, True)  # type: ignore[misc]
            return (*self._fit(model_dir, train, dev, seed, source), train)

        def score(fitted: tuple[Any, Any, _Split], source: str, lang: str) -> list[dict[str, Any]]:
            model, tokenizer, train = fitted
            return self._score(model, tokenizer, tests[lang], lang, train, source)

        return run_plan(plan, fit, score)

    def _metrics(self) -> tuple[bool, str]:
        bio = is_bio(self.label_names)
        metric = self.params["metric"]
        return bio, ("f1" if bio else "accuracy") if metric == "auto" else metric

    def _evaluate(
        self, gold: list[list[str]], pred: list[list[str]], bio: bool, select: str
    ) -> dict[str, float]:
        out = {"accuracy": tag_accuracy(gold, pred)}
        if bio or select == "f1":
            out["f1"] = entity_f1(gold, pred, self.params["f1_mode"])
        return out

    def _score(
        self, model: Any, tokenizer: Any, test: _Split, lang: str, train: _Split, source: str | None = None
    ) -> list[dict[str, Any]]:
        bio, select = self._metrics()
        pred = self._predict(model, tokenizer, test.words, self._fallback(train))
        scores = self._evaluate(test.tags, pred, bio, select)
        log.info(
            "token_classification %s%s: %d sentences, %s",
            lang,
            f" (fine-tuned on {source})" if source is not None and source != lang else "",
            len(test.words),
            ", ".join(f"{k} {v:.4f}" for k, v in scores.items()),
        )
        return [{"language": lang, "metric": k, "value": float(v)} for k, v in sorted(scores.items())]

    def _fallback(self, train: _Split) -> str:
        if "O" in self.label_names:
            return "O"
        return Counter(t for ts in train.tags for t in ts).most_common(1)[0][0]

    # ---- model ------------------------------------------------------------------------------------
    def _fit(self, model_dir: Path, train: _Split, dev: _Split, seed: int, lang: str) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForTokenClassification, AutoTokenizer

        p = self.params
        if p["o_weight"] is not None and "O" not in self.label_names:
            raise ConfigError(
                f"token_classification.o_weight is set but the tag set has no 'O': {self.label_names}"
            )
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if not getattr(tokenizer, "is_fast", False):
            raise DataError(f"token_classification needs a fast tokenizer (word_ids); {model_dir} has none")
        torch.manual_seed(seed)  # head initialization, then batch order and dropout
        model = load_pretrained(
            AutoModelForTokenClassification,
            model_dir,
            (r"^classifier\.", r"(^|\.)pooler\."),
            num_labels=len(self.label_names),
            id2label=dict(enumerate(self.label_names)),
            label2id={t: i for i, t in enumerate(self.label_names)},
        ).to(resolve_device(p["device"]))
        for attr in ("classifier", "dropout", model.base_model_prefix):
            if not hasattr(model, attr):
                raise DataError(
                    f"token_classification: {type(model).__name__} has no {attr!r} (unsupported model)"
                )
        log.info(
            "token_classification (%s, %s pooling): fine-tuning on %s, %d train / %d dev sentences",
            p["protocol"], p["word_pooling"], lang, len(train.words), len(dev.words),
        )  # fmt: skip
        best = self._train(model, tokenizer, train, dev, seed, lang)
        model.load_state_dict(best)
        return model, tokenizer

    def _train(self, model: Any, tokenizer: Any, train: _Split, dev: _Split, seed: int, lang: str) -> dict:
        """Fine-tune (`langadapt.evaluation.finetune`, early stopping with ``patience``); return the state dict
        (on CPU) best on dev."""
        import torch

        p = self.params
        device = next(model.parameters()).device
        label_id = {t: i for i, t in enumerate(self.label_names)}
        o_id = label_id.get("O")
        bio, select = self._metrics()
        fallback = self._fallback(train)

        def group_loss(micro: list[list[int]]) -> float | None:
            group = []
            for idx in micro:
                enc = encode_words(tokenizer, [train.words[i] for i in idx], p["max_length"])
                gold = [label_id[t] for i in idx for t in train.tags[i]]
                keep = torch.from_numpy(enc.present)
                group.append((enc, keep, torch.tensor(gold, dtype=torch.long)[keep]))
            labels_all = torch.cat([g[2] for g in group])
            if labels_all.numel() == 0:
                return None  # every word truncated away (cannot happen with max_length >= 3)
            weights_all = word_weights(labels_all, o_id, p["o_weight"])
            total_weight = float(weights_all.sum())
            if total_weight <= 0:
                return None  # o_weight 0 and an all-O batch: no signal
            pos, total = 0, 0.0
            for enc, keep, labels in group:
                w = weights_all[pos : pos + len(labels)]
                pos += len(labels)
                if len(labels) == 0:
                    continue
                logits = word_logits(model, enc, p["word_pooling"])[keep.to(device)]
                part = weighted_loss(logits, labels.to(device), w.to(device), total_weight)
                part.backward()
                total += float(part.detach())
            return total

        def dev_score() -> float:
            pred = self._predict(model, tokenizer, dev.words, fallback)
            return self._evaluate(dev.tags, pred, bio, select)[select]

        return fine_tune(model, len(train.words), group_loss, dev_score, p, seed, f"token_classification {lang}",
                         select)

    def _predict(
        self, model: Any, tokenizer: Any, sentences: list[list[str]], fallback: str
    ) -> list[list[str]]:
        """Predicted tag of every word (length-sorted batches, inference mode); words without a
        subword get `fallback`."""
        import torch

        p = self.params
        model.eval()
        order = np.argsort([-len(s) for s in sentences], kind="stable")
        out: list[list[str]] = [[] for _ in sentences]
        missing = 0
        with torch.inference_mode():
            for start in range(0, len(sentences), p["eval_batch_size"]):
                idx = order[start : start + p["eval_batch_size"]]
                enc = encode_words(tokenizer, [sentences[i] for i in idx], p["max_length"])
                pred = word_logits(model, enc, p["word_pooling"]).argmax(dim=-1).cpu().numpy()
                for b, i in enumerate(idx):
                    lo, hi = enc.offsets[b], enc.offsets[b + 1]
                    out[i] = [
                        self.label_names[pred[w]] if enc.present[w] else fallback for w in range(lo, hi)
                    ]
                    missing += int((~enc.present[lo:hi]).sum())
        if missing:
            log.info(
                "token_classification: %d word(s) without subwords (truncated/empty) got %r",
                missing,
                fallback,
            )
        return out
