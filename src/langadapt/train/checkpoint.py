"""Resumable training machinery shared by continued pretraining (`mlm`) and realignment (`realign`).

A *run directory* (``results/runs/{recipe}/{stage}/``, undeclared to Snakemake) holds::

    run.json                     fingerprint of (config + input file digests) of the run that owns it
    loss.csv                     step, loss, lr, tokens, elapsed_s
    checkpoints/step-00000010/   trainer.pt (model, optimizer, scheduler, torch RNG states; loaded with
                                 ``weights_only=True``) + state.json (step, data position, numpy/python
                                 RNG states, loss accumulators)
    packed/                      stage-specific caches (e.g. packed token arrays), valid for this fingerprint

Policy when a run directory belongs to a *different* fingerprint (config or inputs changed): the old run
is moved aside to ``{run_dir}.stale-{old fingerprint[:12]}`` (replacing an older copy of that name) with a
warning, and training starts fresh. This keeps Snakemake reruns and Slurm retries hands-off; a checkpoint
is only ever resumed by a run with the identical fingerprint.

Checkpoints are written into a temporary directory and renamed into place, so a kill at any moment
leaves either the previous or the new checkpoint, never a partial one; the newest ``keep`` are kept.
SIGTERM (Slurm preemption / time limit) sets a flag; the loop saves a checkpoint at the next step
boundary and raises :class:`Preempted` (``SystemExit(143)``) so that the executor retries and resumes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch

from langadapt.core.atomic import atomic_dir, atomic_file, write_text_atomic
from langadapt.core.runtime import Job, job
from langadapt.models.card import write_provenance

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
LOSS_COLUMNS = ("step", "loss", "lr", "tokens", "elapsed_s")


class Preempted(SystemExit):
    """Raised after a checkpoint was saved because SIGTERM arrived; exit status 128 + signal number."""


# ----------------------------------------------------------------------------------------- config
def fingerprint(obj: Any) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def inputs_digest(inputs: Mapping[str, Path]) -> dict[str, str]:
    """Content digests keyed ``name`` (files) or ``name/relative/path`` (every file inside a directory).

    Keys use the given names, not the paths, so the same inputs reached by another path agree.
    """
    out: dict[str, str] = {}
    for name, p in inputs.items():
        p = Path(p)
        if p.is_dir():
            for q in sorted(q for q in p.rglob("*") if q.is_file()):
                out[f"{name}/{q.relative_to(p).as_posix()}"] = file_digest(q)
        else:
            out[name] = file_digest(p)
    return out


# --------------------------------------------------------------------------------------- run dir
def _write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(json.dumps(obj, indent=1, sort_keys=True, default=str), path)


def prepare_run_dir(run_dir: Path, fp: str, record: Mapping[str, Any]) -> None:
    """Claim `run_dir` for fingerprint `fp`; a run dir of another fingerprint is moved aside first."""
    run_dir = Path(run_dir)
    meta = run_dir / "run.json"
    if run_dir.exists():
        old = None
        if meta.exists():
            try:
                old = json.loads(meta.read_text()).get("fingerprint")
            except (json.JSONDecodeError, OSError):
                old = None
        if old != fp and any(run_dir.iterdir()):
            aside = run_dir.with_name(f"{run_dir.name}.stale-{(old or 'unknown')[:12]}")
            log.warning("run dir %s belongs to another config/input (%s); moving it to %s and starting fresh",
                        run_dir, old, aside)
            if aside.exists():
                shutil.rmtree(aside)
            os.replace(run_dir, aside)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(meta, {"fingerprint": fp, **record})


# ------------------------------------------------------------------------------------------- RNG
def capture_rng() -> dict[str, Any]:
    """Global RNG states: torch CPU (+CUDA) as tensors; numpy and python as JSON-able lists."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------ checkpoints
def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints in `run_dir`, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [d for d in root.glob("step-*") if (d / "state.json").is_file() and (d / "trainer.pt").is_file()]
    return sorted(done, key=lambda d: int(d.name.split("-")[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint directory, or None."""
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def save_checkpoint(run_dir: Path, step: int, tensors: Mapping[str, Any], state: Mapping[str, Any],
                    keep: int = 2) -> Path:
    """Write ``trainer.pt`` (torch objects) + ``state.json`` atomically; keep the newest `keep`."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    torch.save(dict(tensors), tmp / "trainer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, **state}, sort_keys=True))
    for f in tmp.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(run_dir)[: -max(keep, 1)]:
        shutil.rmtree(old, ignore_errors=True)
    for stray in root.glob(".tmp-step-*"):
        shutil.rmtree(stray, ignore_errors=True)
    return final


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> tuple[dict[str, Any], dict]:
    """(torch objects, JSON state) of a checkpoint directory; ``torch.load(weights_only=True)``."""
    tensors = torch.load(Path(path) / "trainer.pt", map_location=map_location, weights_only=True)
    state = json.loads((Path(path) / "state.json").read_text())
    return tensors, state


def remove_checkpoints(run_dir: Path) -> None:
    """Delete all checkpoints of a run (after its output was saved)."""
    shutil.rmtree(Path(run_dir) / CHECKPOINTS, ignore_errors=True)


# ---------------------------------------------------------------------------------------- SIGTERM
class SigtermFlag:
    """Context manager: while active, SIGTERM only sets ``received`` (checked at step boundaries).

    Outside the main thread signal handlers cannot be installed; the flag then stays unset.
    """

    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM,)) -> None:
        self.signals = signals
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        log.warning("received signal %d: will checkpoint at the next step boundary and exit", signum)

    def __enter__(self) -> SigtermFlag:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()


# ---------------------------------------------------------------------------------------- loss log
class LossLog:
    """``run_dir/loss.csv`` appended row by row; on resume, rows after the checkpoint step are dropped."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = Path(path)
        rows: list[list[str]] = []
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.reader(f)
                next(reader, None)
                rows = [r for r in reader if r and int(r[0]) <= resume_step]
        with atomic_file(self.path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(LOSS_COLUMNS)
            w.writerows(rows)
        self._fh = open(self.path, "a", newline="")  # noqa: SIM115 (closed in close())
        self._w = csv.writer(self._fh)

    def write(self, step: int, loss: float, lr: float, tokens: int, elapsed_s: float) -> None:
        self._w.writerow([step, f"{loss:.6f}", f"{lr:.6g}", tokens, f"{elapsed_s:.2f}"])
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


# ------------------------------------------------------------------------------------ model output
def save_model_dir(model: Any, tokenizer: Any, out_dir: Path, provenance: Mapping[str, Any],
                   loss_csv: Path | None = None, extra: Callable[[Path], None] | None = None) -> Path:
    """Save model (safetensors) + tokenizer + ``langadapt.json`` (+ ``loss.csv``) atomically to `out_dir`.

    `extra(directory)` may write more files (e.g. LangSAMP tables) into the directory before it is renamed.

    Everything is written to a temporary sibling directory first, then renamed into place (an existing
    `out_dir` is replaced), so a crash never leaves a partial model directory.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_provenance(tmp, provenance, indent=1, final=out_dir)  # langadapt.json + README.md (model card)
        if loss_csv is not None and Path(loss_csv).exists():
            shutil.copyfile(loss_csv, tmp / "loss.csv")
        if extra is not None:
            extra(tmp)
    return out_dir


def training_job(snakemake: Any, run_dir: str | os.PathLike) -> Job:
    """`langadapt.core.runtime.job` for a training rule: its log also goes to ``{run_dir}.attempts.log``, and
    the first line says whether an earlier attempt left a checkpoint to continue from."""
    return job(snakemake, run_dir, resuming=latest_checkpoint(Path(run_dir)) is not None)
