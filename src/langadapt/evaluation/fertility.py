"""Tokenizer fertility as an evaluation task (issue 19 §3: a new vocabulary against the source tokenizer).

``fertility`` reads only the evaluated model's tokenizer: per language, the pieces per word of a corpus split
(``test`` by default) without special tokens — per character for scripts written without spaces — and the
share of pieces that are the unknown token (:func:`langadapt.models.tokenization.tokenizer_stats`, the
statistics the tokenizer job writes for its own dev splits). Metrics ``fertility`` and ``unk_rate`` (lower is
better); no fine-tuning, so the job seed does not change them. A vocabulary specialized for a language
segments it into fewer pieces than a multilingual one (the motivation of the vocabulary-specialization
paper, §2: cross-lingual vocabularies tokenize low-resource languages inefficiently).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langadapt.core.errors import ConfigError
from langadapt.evaluation.tasks import TASKS, Task, TaskData


@TASKS.register("fertility")
class Fertility(Task):
    """Pieces per word and UNK rate of the model's tokenizer per language."""

    kind = "fertility"
    light = True  # one thread: inference over a few hundred sentences
    inputs = frozenset({"corpora"})
    defaults = {
        "split": "test",  # held-out verses, as mlm_loss
        "max_sentences": None,  # per language, in verse order; None = the whole split
    }

    @property
    def uses_pivot(self) -> bool:
        return False  # the languages asked for, no more

    def validate(self) -> None:
        if self.params["max_sentences"] is not None:
            self._positive("max_sentences")
        if self.params["split"] not in ("train", "dev", "test"):
            raise ConfigError(f"fertility.split must be train, dev or test, got {self.params['split']!r}")

    def run(self, model_dir: Path, data: TaskData, seed: int) -> list[dict[str, Any]]:
        from langadapt.models.tokenization import tokenizer_stats

        p = self.params
        texts = data.split_texts(self.kind, p["split"], p["max_sentences"])  # checked before the tokenizer loads
        stats = tokenizer_stats(Path(model_dir), texts)
        return [
            {"language": row.lang, "metric": metric, "value": float(getattr(row, metric))}
            for row in stats.itertuples()
            for metric in ("fertility", "unk_rate")
        ]
