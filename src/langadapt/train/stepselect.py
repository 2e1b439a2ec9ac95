"""Checkpoint selection on downstream tasks (``select: downstream``; LangSAMP §4.1: checkpoints every 5K steps,
"early stopping with the best average performance on downstream tasks").

The pretraining job exports the model at every selection step (:func:`langadapt.train.settings.
selection_steps`) into ``{stage dir}_steps/steps/step{k}`` (:class:`StepExporter`); the workflow evaluates
each export on the configured ``select_tasks`` (rule ``evaluate_step``) and
:func:`langadapt.report.steps.select_step_job` keeps the step with the best average main metric.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from langadapt.core.errors import ConfigError, DataError
from langadapt.train.checkpoint import save_model_dir
from langadapt.train.settings import selection_steps

log = logging.getLogger(__name__)

STEPS_SUBDIR = "steps"


def step_dir(steps_root: Path, step: int) -> Path:
    return Path(steps_root) / STEPS_SUBDIR / f"step{int(step)}"


class StepExporter:
    """Writes the model of each selection step under ``run_dir/exports`` (kept across preemption: a step
    already exported is not written again) and moves them into the stage's output directory at the end."""

    def __init__(self, run_dir: Path, steps: Sequence[int]) -> None:
        self.root, self.steps = Path(run_dir) / "exports", set(int(s) for s in steps)

    def maybe_export(self, step: int, save: Callable[[Path], None]) -> bool:
        out = step_dir(self.root, step)
        if step not in self.steps or (out / "config.json").is_file():
            return False
        save(out)
        log.info("exported the model of step %d for downstream selection: %s", step, out)
        return True

    def exported(self) -> list[int]:
        return sorted(s for s in self.steps if (step_dir(self.root, s) / "config.json").is_file())

    def move_into(self, directory: Path) -> list[int]:
        """Move every export into `directory`/steps; DataError naming the missing steps."""
        missing = sorted(self.steps - set(self.exported()))
        if missing:
            raise DataError(f"{self.root}: no exported model for step(s) {missing}")
        for s in sorted(self.steps):
            dest = step_dir(directory, s)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(step_dir(self.root, s)), dest)
        return sorted(self.steps)


def step_export(cfg: Mapping[str, Any], model: Any, tokenizer: Any, objective: Any,
                provenance: Mapping[str, Any] | None, fp: str, run_dir: Path, factorization: Any,
                model_dir: Path) -> Callable[[int, Path], None]:  # fmt: skip
    """Writes the model directory of one step (``select: downstream``): model, tokenizer, LangSAMP tables."""
    if cfg["select"] == "downstream" and factorization is not None:
        raise ConfigError(f"{model_dir}: select 'downstream' exports plain models; this model is factorized "
                          f"(set factorized: false, or select: last / dev_mlm)")

    def export(step: int, directory: Path) -> None:
        save_model_dir(model, tokenizer, directory, {**(provenance or {}), "training": {
            "stage": "pretrain", "step": step, "fingerprint": fp, "config": cfg}}, run_dir / "loss.csv",
            extra=objective.save_tables)  # fmt: skip

    return export


def downstream_exports(cfg: Mapping[str, Any], trainer: Any, callback: Callable[[int], None] | None,
                       export: Callable[[int, Path], None],
                       ) -> tuple[Callable[[int], None], Callable[[], dict], Callable[[Path], None]]:  # fmt: skip
    """``select: downstream`` for the pretraining loop (`trainer`: its `Trainer`): (step callback: rank 0
    exports the model at every selection step; the selection record; a hook moving the exports into the
    stage's output directory). The workflow evaluates the exports and picks the step."""
    exporter, dist = StepExporter(trainer.run_dir, selection_steps(cfg)), trainer.dist

    def on_step(step: int) -> None:
        if step in exporter.steps:
            if dist.is_main:
                exporter.maybe_export(step, lambda out: export(step, out))
            dist.barrier()
        if callback is not None:
            callback(step)

    def select() -> dict:
        return {"select": "downstream", "selected_step": None, "exported_steps": sorted(exporter.steps)}

    return on_step, select, exporter.move_into
