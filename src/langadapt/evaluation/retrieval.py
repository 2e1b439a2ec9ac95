"""SR-B style sentence retrieval on the verse-aligned Bible corpora (task kind ``retrieval_bible``).

Protocol (LangSAMP, Appendix A "Sentence Retrieval", following Glot500's
``evaluation/retrieval/evaluate_retrieval_bible.py``): no fine-tuning; every sentence is encoded by
mean-pooling the hidden states of one layer (the 8th); for each English query the candidates of the
other language are ranked by cosine similarity; the score is top-k accuracy (top-10 is the SR-B
metric of LangSAMP Table 2).

* Queries are pivot-language (English) verses of the ``split`` split (``test``), candidates are the
  same verse ids in language L; only verse ids present in both corpora are used.
* At most ``max_sentences`` (500, LangSAMP App. A) verses per language. ``sample: even`` (default)
  takes evenly spaced verse ids from the sorted common ids, so every recipe and seed is scored on
  the same verses (retrieval involves no training, so the seed changes nothing);
  ``sample: seeded`` draws a uniform sample with the job seed instead.
* ``layer`` indexes ``hidden_states`` with ``hidden_states[0]`` = embedding output, so ``layer: 8``
  is the output of the 8th transformer layer (Glot500 drops the embeddings and takes index 7: the
  same tensor). Layers above it are not even loaded.
* Mean pooling is over real tokens only: padding is excluded by the attention mask and, by default,
  the special tokens (``<s>``/``</s>``, ``[CLS]``/``[SEP]``) too (``pool_special_tokens: false``),
  so that the sentence vector depends on the sentence's own tokens only. Glot500's script pools
  over the specials as well unless ``--pool_skip_special_token`` is given; set
  ``pool_special_tokens: true`` to match that.
* Inference is batched, length-sorted (little padding), ``max_length`` 128 tokens (truncation),
  under ``torch.inference_mode``. Pivot embeddings are computed once per job.
* Ties in similarity count as a random tie-break in expectation (see ``metrics.topk_accuracy``).
* Verse source: by default the workflow's verse-aligned corpora (``results/data/corpora/{lang}.parquet``,
  task inputs ``corpora``); with a ``dataset`` spec (``{kind: pbc, path: .../{iso}-x-bible.txt}``, the
  Parallel Bible Corpus files of SR-B, see :mod:`.datasets`) the verses are read from those files instead
  and the job reads no corpus. Languages without a file are skipped (logged); the pivot must have one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from langadapt.core.checks import check_int, is_int
from langadapt.core.errors import ConfigError, DataError
from langadapt.core.runtime import resolve_device
from langadapt.evaluation.datasets import EvalDataset, build_dataset
from langadapt.evaluation.metrics import topk_accuracy
from langadapt.evaluation.tasks import TASKS, Task, TaskData, check_layer, load_pretrained

log = logging.getLogger(__name__)


def select_ids(ids: np.ndarray, n: int, sample: str, seed: int) -> np.ndarray:
    """At most `n` of the sorted verse `ids`: evenly spaced (``"even"``) or a seeded random sample."""
    ids = np.sort(np.asarray(ids, dtype=np.int64))
    if len(ids) <= n:
        return ids
    if sample == "even":
        # spacing (len-1)/(n-1) > 1, so the rounded positions are distinct
        pos = np.round(np.linspace(0, len(ids) - 1, n)).astype(np.int64)
    elif sample == "seeded":
        pos = np.sort(np.random.default_rng(seed).choice(len(ids), size=n, replace=False))
    else:
        raise ConfigError(f"retrieval_bible.sample must be 'even' or 'seeded', got {sample!r}")
    return ids[pos]


def load_encoder(model_dir: Path, layer: int, device: Any) -> tuple[Any, Any]:
    """Tokenizer and encoder of `model_dir` (an MLM checkpoint works) keeping only layers 1..`layer`."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    # at least one layer: a 0-layer encoder returns no hidden_states at all (transformers 5)
    model = load_pretrained(AutoModel, model_dir, (r"(^|\.)pooler\.",), num_hidden_layers=max(layer, 1))
    model.to(device).eval()
    return tokenizer, model


def encode_mean(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    layer: int,
    *,
    max_length: int = 128,
    batch_size: int = 64,
    pool_special_tokens: bool = False,
    desc: str = "encode",
) -> np.ndarray:
    """Mean-pooled ``hidden_states[layer]`` of each text, float32 ``[len(texts), hidden]``.

    Texts are tokenized without padding, sorted by length and padded per batch; the pooling mask is
    the attention mask, minus special tokens unless `pool_special_tokens`. A text with no token left
    in the mask (e.g. empty) gets the zero vector.
    """
    import torch
    from tqdm.auto import tqdm

    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True)
    ids, special = enc["input_ids"], enc["special_tokens_mask"]
    order = np.argsort([-len(x) for x in ids], kind="stable")  # longest first: memory errors show early
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    out = np.zeros((len(ids), model.config.hidden_size), dtype=np.float32)
    starts = range(0, len(ids), batch_size)
    with torch.inference_mode():
        for start in tqdm(starts, desc=desc, unit="batch", mininterval=5.0, leave=False):
            idx = order[start : start + batch_size]
            width = max(len(ids[i]) for i in idx)
            input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(idx), width), dtype=torch.long)
            pool = torch.zeros((len(idx), width), dtype=torch.float32)
            for row, i in enumerate(idx):
                n = len(ids[i])
                input_ids[row, :n] = torch.tensor(ids[i])
                attention[row, :n] = 1
                keep = (
                    torch.ones(n)
                    if pool_special_tokens
                    else 1.0 - torch.tensor(special[i], dtype=torch.float32)
                )
                pool[row, :n] = keep
            hidden = model(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), output_hidden_states=True
            ).hidden_states[layer]
            pool = pool.to(device).unsqueeze(-1)
            summed = (hidden.float() * pool).sum(dim=1)
            vec = summed / pool.sum(dim=1).clamp(min=1.0)
            out[idx] = vec.cpu().numpy()
    return out


def cosine_matrix(queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Cosine similarity ``[n_q, n_c]`` (zero vectors have similarity 0 with everything)."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    c = candidates / np.maximum(np.linalg.norm(candidates, axis=1, keepdims=True), 1e-12)
    return q.astype(np.float64) @ c.astype(np.float64).T


def check_retrieval_params(task: Task) -> None:
    """Checks shared by the retrieval tasks: positive sizes, layer >= 0, k >= 1, sample even|seeded."""
    p, kind = task.params, task.kind
    task._positive("max_sentences", "max_length", "batch_size")
    check_int(p["layer"], f"{kind}.layer", low=0)
    if not p["k"] or not all(is_int(k) and k >= 1 for k in p["k"]):
        raise ConfigError(f"{kind}.k must be a non-empty list of integers >= 1, got {p['k']!r}")
    if p["sample"] not in ("even", "seeded"):
        raise ConfigError(f"{kind}.sample must be 'even' or 'seeded', got {p['sample']!r}")


@TASKS.register("retrieval_bible")
class BibleRetrieval(Task):
    """SR-B style retrieval: English test verses as queries, the same verses in L as candidates."""

    kind = "retrieval_bible"
    inputs = frozenset({"corpora"})  # without a `dataset` (see inputs_for)
    dataset_kinds: ClassVar[tuple[str, ...]] = ("pbc",)
    defaults = {
        "dataset": None,  # None = the workflow corpora; {kind: pbc, path: ...} = Parallel Bible Corpus files
        "layer": 8,  # LangSAMP App. A: mean of the contextual token embeddings at the 8th layer
        "max_sentences": 500,  # LangSAMP App. A: up to 500 English-aligned sentences for SR-B
        "k": [1, 10],  # LangSAMP Table 2: SR-B metric is top-10 accuracy (top-1 reported as well)
        "split": "test",  # never the training split of continued pretraining / fine-tuning
        "sample": "even",  # "even" (seed-independent) or "seeded" (job seed), see module docstring
        "pool_special_tokens": False,  # Glot500 default pools specials too (see module docstring)
        "max_length": 128,  # tokens per verse (truncation)
        "batch_size": 64,  # inference batch size (no effect on results)
        "device": "auto",  # "auto" = cuda if available, else cpu
    }

    @classmethod
    def inputs_for(cls, task_cfg: Mapping[str, Any]) -> frozenset[str]:
        """The workflow corpora, unless the verses come from a ``dataset``."""
        return frozenset() if task_cfg.get("dataset") is not None else cls.inputs

    def validate(self) -> None:
        check_retrieval_params(self)
        if self.params["split"] not in ("train", "dev", "test"):
            raise ConfigError(
                f"retrieval_bible.split must be train, dev or test, got {self.params['split']!r}"
            )
        self.dataset: EvalDataset | None = None
        spec = self.params["dataset"]
        if spec is not None:
            if not isinstance(spec, Mapping) or spec.get("kind") not in self.dataset_kinds:
                raise ConfigError(
                    f"retrieval_bible.dataset must be a dataset spec {{kind: {'|'.join(self.dataset_kinds)}, "
                    f"...}} or null (the workflow corpora), got {spec!r}"
                )
            try:
                self.dataset = build_dataset(spec)
            except ConfigError as exc:
                raise ConfigError(f"retrieval_bible.dataset: {exc}") from None

    def _languages(self, data: TaskData) -> list[str]:
        """Target languages: all of them with the corpora; those the dataset has a file for otherwise."""
        if self.dataset is None:
            return data.targets
        if not self.dataset.covers([data.pivot]):
            raise DataError(
                f"retrieval_bible: {self.dataset.describe()} has no file for the pivot {data.pivot}"
            )
        langs = self.dataset.covers(data.targets)
        if skipped := sorted(set(data.targets) - set(langs)):
            log.info(
                "retrieval_bible: %s has no data for %s (skipped)",
                self.dataset.describe(),
                ", ".join(skipped),
            )
        if not langs:
            raise DataError(
                f"retrieval_bible: {self.dataset.describe()} covers none of {', '.join(data.targets)}"
            )
        return langs

    def _verses(self, data: TaskData, lang: str) -> tuple[pd.Series, str]:
        """Texts of the ``split`` verses of `lang`, indexed by verse id, and where they come from."""
        split = self.params["split"]
        if self.dataset is None:
            df = data.corpus(lang)
            assert data.corpus_paths is not None
            return df.loc[df["split"] == split].set_index("verse_id")["text"], str(data.corpus_paths[lang])
        ex = self.dataset.load(lang, split)
        verses = pd.Series(ex.texts, index=pd.Index(ex.ids, dtype="int64", name="verse_id"), name="text")
        return verses, ex.source

    def run(self, model_dir: Path, data: TaskData, seed: int) -> list[dict[str, Any]]:
        p = self.params
        check_layer(model_dir, p["layer"])
        if not data.targets:
            raise ConfigError(f"retrieval_bible needs at least one language besides the pivot {data.pivot}")
        targets = self._languages(data)
        pivot, pivot_source = self._verses(data, data.pivot)
        chosen: dict[str, np.ndarray] = {}
        texts_of: dict[str, pd.Series] = {}
        for lang in targets:  # all selections first: input errors surface before any inference
            texts_of[lang], source = self._verses(data, lang)
            common = np.intersect1d(texts_of[lang].index.to_numpy(), pivot.index)
            if len(common) == 0:
                raise DataError(
                    f"no {p['split']} verse of {source} is also in the pivot's verses {pivot_source}"
                )
            chosen[lang] = select_ids(common, p["max_sentences"], p["sample"], seed)
            if len(chosen[lang]) < p["max_sentences"]:
                log.warning(
                    "retrieval_bible: only %d %s verses shared by %s and %s",
                    len(chosen[lang]),
                    p["split"],
                    data.pivot,
                    lang,
                )

        tokenizer, model = load_encoder(model_dir, p["layer"], resolve_device(p["device"]))
        kw = {
            "max_length": p["max_length"],
            "batch_size": p["batch_size"],
            "pool_special_tokens": p["pool_special_tokens"],
        }
        pivot_ids = np.unique(np.concatenate(list(chosen.values())))
        pivot_vecs = encode_mean(
            model, tokenizer, pivot.loc[pivot_ids].tolist(), p["layer"], desc=f"encode {data.pivot}", **kw
        )
        row_of = {int(v): i for i, v in enumerate(pivot_ids)}

        rows: list[dict[str, Any]] = []
        for lang in targets:
            ids = chosen[lang]
            texts = texts_of[lang].loc[ids].tolist()
            vecs = encode_mean(model, tokenizer, texts, p["layer"], desc=f"encode {lang}", **kw)
            queries = pivot_vecs[[row_of[int(v)] for v in ids]]
            scores = topk_accuracy(cosine_matrix(queries, vecs), np.arange(len(ids)), p["k"])
            for k in p["k"]:
                rows.append({"language": lang, "metric": f"top{k}", "value": scores[k]})
            log.info(
                "retrieval_bible %s -> %s: %d verses, %s",
                data.pivot,
                lang,
                len(ids),
                ", ".join(f"top{k}={scores[k]:.3f}" for k in p["k"]),
            )
        return rows
