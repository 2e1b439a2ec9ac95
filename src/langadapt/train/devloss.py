"""Checkpoint selection by the held-out masked-LM loss (issue 17 part 2).

The vocabulary-specialization paper (§4) keeps "the checkpoint obtaining the best MLM loss on a development
set" (checkpoints every 1,000 steps). :func:`build_dev_set` fixes, once, up to ``dev_sentences`` sentences
of each language's corpus *dev* split with seeded masks (so every evaluation, and every recipe, scores the
same masked tokens); :func:`dev_losses` is the mean masked-token cross-entropy per language;
:class:`BestKeeper` logs the curve (``dev_loss.csv``: step, language, loss; the mean over languages is the
criterion) and keeps the weights of the best step in the run directory, so that a preempted run resumes with
its best-so-far. LangSAMP (§4.1) instead stops on the average downstream score, which needs the tasks:
``select: last`` keeps the last step there.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from langadapt.core.errors import DataError

log = logging.getLogger(__name__)

SELECT = ("last", "dev_mlm")


@dataclass
class DevBatch:
    """One language's fixed masked dev sentences."""

    inputs: torch.Tensor
    attention: torch.Tensor
    labels: torch.Tensor
    lang_id: int
    script_id: int


def build_dev_set(tokenizer: Any, texts_by_lang: Mapping[str, list[str]], mask: Callable[..., Any],
                  seq_len: int, n_sentences: int, seed: int, ids_of: Callable[[str], tuple[int, int]]
                  ) -> dict[str, DevBatch]:  # fmt: skip
    """`mask(ids, never, generator) -> (inputs, labels)` is the training masking; each language gets its own
    generator seeded with `seed`, so adding a language changes no other language's masks."""
    out: dict[str, DevBatch] = {}
    for lang in sorted(texts_by_lang):
        sents = [t for t in texts_by_lang[lang] if t.strip()][:n_sentences]
        if not sents:
            raise DataError(f"dev MLM loss: the corpus of {lang} has no dev sentences (data.splits.dev_fraction)")
        enc = tokenizer(sents, truncation=True, max_length=seq_len, padding=True, return_tensors="pt")
        ids, attention = enc["input_ids"], enc["attention_mask"].bool()
        special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        never = ~attention | torch.isin(ids, special)
        inputs, labels = mask(ids, never, torch.Generator().manual_seed(seed))
        lang_id, script_id = ids_of(lang)
        out[lang] = DevBatch(inputs, attention.long(), labels, lang_id, script_id)
    return out


@torch.no_grad()
def dev_losses(objective: torch.nn.Module, dev: Mapping[str, DevBatch], device: Any, batch_size: int = 32
               ) -> dict[str, float]:  # fmt: skip
    """Mean masked-token cross-entropy (nats) per language, in eval mode (dropout off); the mode is restored."""
    was_training = objective.training
    objective.eval()
    out = {}
    for lang, b in dev.items():
        total, n = 0.0, 0
        for i in range(0, len(b.inputs), batch_size):
            labels = b.labels[i:i + batch_size]
            k = int((labels != -100).sum())
            if k == 0:
                continue
            rows = len(labels)
            loss = objective(b.inputs[i:i + batch_size].to(device), b.attention[i:i + batch_size].to(device),
                             labels.to(device), torch.full((rows,), b.lang_id, device=device),
                             torch.full((rows,), b.script_id, device=device), float(k))  # fmt: skip
            total, n = total + float(loss) * k, n + k
        out[lang] = total / n if n else float("nan")
    objective.train(was_training)
    return out


class BestKeeper:
    """The dev curve and the best step's weights in `run_dir` (``dev_loss.csv``, ``best.pt``, ``best.json``),
    kept across preemption (``torch.save`` of cloned tensors: tied embeddings are saved once per name)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.curve_path, self.best_path = self.run_dir / "dev_loss.csv", self.run_dir / "best.pt"
        meta = self.run_dir / "best.json"
        state = json.loads(meta.read_text()) if meta.is_file() and self.best_path.is_file() else {}
        self.best_step: int | None = state.get("step")
        self.best_loss: float = state.get("loss", float("inf"))

    def update(self, step: int, losses: Mapping[str, float], objective: torch.nn.Module) -> bool:
        """Log the step's losses; keep the weights when their mean is the best so far (step 0 is logged only)."""
        mean = sum(losses.values()) / len(losses)
        new = not self.curve_path.is_file()
        with open(self.curve_path, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["step", "language", "loss"])
            w.writerows([[step, lang, f"{v:.6f}"] for lang, v in sorted(losses.items())] + [[step, "mean", f"{mean:.6f}"]])
        log.info("dev MLM loss at step %d: %.4f (%s)", step, mean,
                 ", ".join(f"{k} {v:.3f}" for k, v in sorted(losses.items())))  # fmt: skip
        if step == 0 or not mean < self.best_loss:
            return False
        tmp = self.best_path.with_suffix(".tmp")
        torch.save({k: v.detach().cpu().clone() for k, v in objective.state_dict().items()}, tmp)
        tmp.replace(self.best_path)
        (self.run_dir / "best.json").write_text(json.dumps({"step": step, "loss": mean}))
        self.best_step, self.best_loss = step, mean
        return True

    def restore(self, objective: torch.nn.Module) -> int | None:
        """Load the best step's weights into `objective`; its step (None: nothing kept)."""
        if self.best_step is None:
            return None
        objective.load_state_dict(torch.load(self.best_path, map_location="cpu", weights_only=True))
        log.info("selected step %d (dev MLM loss %.4f)", self.best_step, self.best_loss)
        return self.best_step

    def curve(self) -> dict[int, float]:
        """``{step: mean dev loss}`` from ``dev_loss.csv``."""
        if not self.curve_path.is_file():
            return {}
        with open(self.curve_path, encoding="utf-8") as f:
            return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r["language"] == "mean"}


def model_mlm_losses(model_dir: Path, texts_by_lang: Mapping[str, list[str]], seq_len: int, n_sentences: int,
                     mask_seed: int, device: Any, probability: float = 0.15,
                     ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, float]:  # fmt: skip
    """Held-out masked-token loss per language of the model directory `model_dir` (the ``mlm_loss``
    evaluation task): BERT masking seeded with `mask_seed` per language (:func:`build_dev_set`), so every
    model with the same tokenizer is scored on the same masked tokens. A LangSAMP model is scored with its
    saved language/script embeddings (``langsamp.safetensors``), as in its pretraining; languages outside its
    inventory raise ConfigError."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from langadapt.models.mlm_head import mask_candidates, mask_tokens
    from langadapt.train.objective import IdMaps, MLMObjective, read_tables

    model_dir = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).to(device)
    saved = read_tables(model_dir)
    variant, maps = "none", None
    if saved is not None:
        meta = saved[1]
        variant = meta.get("variant", "both")
        maps = IdMaps(tuple(sorted(meta["languages"], key=meta["languages"].get)),
                      tuple(sorted(meta["scripts"], key=meta["scripts"].get)))  # fmt: skip
    objective = MLMObjective(model, variant, maps).to(device)
    objective.load_tables_from(model_dir)
    candidates = mask_candidates(tokenizer, min(len(tokenizer), model.get_input_embeddings().num_embeddings))
    dev = build_dev_set(
        tokenizer, texts_by_lang,
        lambda ids, never, g: mask_tokens(ids, never, tokenizer.mask_token_id, candidates, g, probability, ratios),
        seq_len, n_sentences, mask_seed, lambda c: (maps.language_id(c), maps.script_id(c)) if maps else (0, 0),
    )  # fmt: skip
    return dev_losses(objective, dev, device)
