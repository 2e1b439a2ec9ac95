"""The held-out masked-LM loss as an evaluation task (issue 19 §2).

``mlm_loss`` scores each language's held-out sentences (a corpus split, ``test`` by default: never seen in
continued pretraining) with BERT masking seeded by ``mask_seed`` — the same seed for every recipe, so two
models with the same tokenizer are scored on exactly the same masked tokens and their difference is paired.
It is the measure of embedding initialisation (the vocabulary paper §5's "MLM loss" curves at step 0 and
after LAPT; HyperOFA's comparison with random and OFA initialisation) and of the base model's head.
Models with different vocabularies tokenise the same sentences differently: their losses are not
comparable token for token (compare recipes that share a tokenizer). Metric ``mlm_loss`` (nats per masked
token, lower is better); the job seed does not change it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langadapt.core.errors import ConfigError
from langadapt.core.runtime import resolve_device
from langadapt.evaluation.tasks import TASKS, Task, TaskData


@TASKS.register("mlm_loss")
class MaskedLMLoss(Task):
    """Held-out masked-token cross-entropy per language (`langadapt.train.devloss.model_mlm_losses`)."""

    kind = "mlm_loss"
    light = True  # one thread: inference over a few hundred sentences
    inputs = frozenset({"corpora"})
    defaults = {
        "split": "test",  # held-out verses (never trained on); "dev" is the checkpoint-selection split
        "max_sentences": 200,  # per language, in verse order (the devloss default: dev_sentences 200)
        "max_length": 128,  # tokens per sentence (truncation)
        "mask_seed": 0,  # fixed across recipes and job seeds: paired comparisons
        "mlm_probability": 0.15,  # BERT / XLM-R masking (every paper here pretrains with it)
        "batch_size": 32,
        "device": "auto",
    }

    @property
    def uses_pivot(self) -> bool:
        return False  # the languages asked for, no more

    def validate(self) -> None:
        self._positive("max_sentences", "max_length", "batch_size")
        if self.params["split"] not in ("train", "dev", "test"):
            raise ConfigError(f"mlm_loss.split must be train, dev or test, got {self.params['split']!r}")
        if not 0 < self.params["mlm_probability"] < 1:
            raise ConfigError(
                f"mlm_loss.mlm_probability must be in (0, 1), got {self.params['mlm_probability']!r}"
            )
        if self.params["mask_seed"] < 0:
            raise ConfigError(f"mlm_loss.mask_seed must be >= 0, got {self.params['mask_seed']!r}")

    def run(self, model_dir: Path, data: TaskData, seed: int) -> list[dict[str, Any]]:
        from langadapt.train.devloss import model_mlm_losses

        p = self.params
        texts = data.split_texts(self.kind, p["split"], p["max_sentences"])  # checked before the model loads
        losses = model_mlm_losses(model_dir, texts, p["max_length"], p["max_sentences"], p["mask_seed"],
                                  resolve_device(p["device"]), probability=p["mlm_probability"])  # fmt: skip
        return [{"language": lang, "metric": "mlm_loss", "value": v} for lang, v in sorted(losses.items())]
