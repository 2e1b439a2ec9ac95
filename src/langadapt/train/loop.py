"""The resumable optimisation loop shared by continued pretraining and realignment.

:class:`Trainer` owns model, optimizer, scheduler and any extra stateful objects (data samplers, the
masking generator); it resumes from the newest checkpoint of its run directory, runs the remaining
steps (gradient accumulation, clipping, logging, periodic checkpoints, SIGTERM handling) and reports
throughput. Exact resume: every source of randomness (global torch/numpy/python RNGs, the masking
generator, the data samplers' numpy generators and positions) is captured at the step boundary.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.progress import Progress
from langadapt.train.checkpoint import (
    LossLog,
    Preempted,
    SigtermFlag,
    capture_rng,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    save_checkpoint,
)
from langadapt.train.distributed import Dist

log = logging.getLogger(__name__)


class Stateful(Protocol):
    """Anything with ``state_dict()`` / ``load_state_dict()``."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> None: ...


def adamw(params: Iterable[Any], **kwargs: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW(params, **kwargs)`` (parameters or parameter groups), fused when it can be.

    The fused implementation (one kernel per parameter instead of ~8 elementwise passes; CPU and CUDA)
    when every parameter is a float tensor on one of those devices: on a 250k-piece vocabulary the
    unfused CPU update of the embedding matrix alone took ~14% of a training step; in the embedded
    default's fine-tuning (a 42M-parameter model, batch 8 x 64 tokens) 0.27 s of a 0.70 s step, fused 0.04 s.
    """
    params = list(params)
    flat = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16, torch.float16)
                for p in flat)
    return torch.optim.AdamW(params, fused=fused or None, **kwargs)


def make_optimizer(model: torch.nn.Module, lr: float, betas: Iterable[float], eps: float,
                   weight_decay: float) -> torch.optim.AdamW:
    """AdamW (:func:`adamw`); no weight decay on biases and normalization weights (parameters with < 2
    dims)."""
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    b1, b2 = (float(b) for b in betas)
    return adamw(groups, lr=lr, betas=(b1, b2), eps=eps)


def make_scheduler(optimizer: torch.optim.Optimizer, steps: int, warmup_steps: int,
                   schedule: str) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup over `warmup_steps`, then ``linear`` decay to 0 at `steps`, or ``constant``."""
    if schedule not in ("linear", "constant"):
        raise ConfigError(f"unknown schedule {schedule!r}; known: constant, linear")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        if schedule == "constant":
            return 1.0
        return max(0.0, (steps - step) / max(1, steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class GeneratorState:
    """Adapter giving a ``torch.Generator`` the state_dict protocol (exact resume of masking)."""

    def __init__(self, gen: torch.Generator) -> None:
        self.gen = gen

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"state": self.gen.get_state()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        self.gen.set_state(state["state"])


class Trainer:
    """One resumable run: ``resume()`` then ``run(micro_step)``.

    `micro_step()` draws one micro-batch, runs it through :attr:`net` and returns ``(loss tensor, number
    of real tokens)``; `tensor_state` objects are saved in ``trainer.pt``, `json_state` objects in
    ``state.json``.

    Data parallel (`dist` with world > 1, under torchrun): :attr:`net` is `wrap(model)` (DDP), rebuilt
    whenever `before_step` reports that the set of trainable parameters changed; gradients are synchronised
    only on the last micro-batch of a step (``no_sync``); `micro_step` returns its rank's share of the
    global loss (the mean over ranks is logged) and the token count of the *global* micro-batch; rank 0
    writes checkpoints (with every rank's RNG states), the loss log and the progress bar; a SIGTERM seen by
    any rank stops all of them at the same step.
    """

    def __init__(self, *, run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device, steps: int,
                 grad_accum: int = 1, max_grad_norm: float = 1.0, checkpoint_every: int = 1000,
                 keep_checkpoints: int = 2, log_every: int = 100, bf16: bool = False, desc: str = "train",
                 tensor_state: Mapping[str, Stateful] | None = None,
                 json_state: Mapping[str, Stateful] | None = None, dist: Dist | None = None,
                 wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.model, self.optimizer, self.scheduler, self.device = model, optimizer, scheduler, device
        self.dist = dist or Dist()
        self.wrap = wrap or (lambda m: m)
        self.net: torch.nn.Module = model
        self.steps, self.grad_accum, self.max_grad_norm = steps, grad_accum, max_grad_norm
        self.checkpoint_every, self.keep, self.log_every = checkpoint_every, keep_checkpoints, log_every
        self.bf16, self.desc = bf16, desc
        self.tensor_state = dict(tensor_state or {})
        self.json_state = dict(json_state or {})
        self.step = 0
        self.tokens = 0
        self.elapsed = 0.0
        self.acc_loss, self.acc_n = 0.0, 0
        self.last_loss = float("nan")
        self.resumed_from: int | None = None

    # -------------------------------------------------------------------------------- checkpoints
    def save(self) -> Path | None:
        """Checkpoint the current step boundary (rank 0 writes; every rank's RNG states are included)."""
        rngs = self.dist.gather(capture_rng())
        path = None
        if self.dist.is_main:
            tensors = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rngs[0],
                "rng_ranks": rngs,
                "extra": {k: v.state_dict() for k, v in self.tensor_state.items()},
            }
            state = {
                "tokens": self.tokens, "elapsed_s": self.elapsed, "acc_loss": self.acc_loss,
                "acc_n": self.acc_n, "last_loss": self.last_loss, "world_size": self.dist.world,
                "data": {k: v.state_dict() for k, v in self.json_state.items()},
            }
            path = save_checkpoint(self.run_dir, self.step, tensors, state, keep=self.keep)
            log.info("saved checkpoint %s", path)
        self.dist.barrier()
        return path

    def resume(self) -> int | None:
        """Load the newest checkpoint of the run dir, if any; return its step (None = fresh start)."""
        ck = latest_checkpoint(self.run_dir)
        if ck is None:
            return None
        tensors, state = load_checkpoint(ck)
        self.model.load_state_dict(tensors["model"])
        self.optimizer.load_state_dict(tensors["optimizer"])
        self.scheduler.load_state_dict(tensors["scheduler"])
        for k, v in self.tensor_state.items():
            v.load_state_dict(tensors["extra"][k])
        for k, v in self.json_state.items():
            v.load_state_dict(state["data"][k])
        rngs = tensors.get("rng_ranks") or [tensors["rng"]]
        if len(rngs) == self.dist.world:
            restore_rng(rngs[self.dist.rank])
        else:  # resumed with another number of processes: data and masks are global, dropout reseeds
            log.warning("checkpoint was written by %d processes, resuming with %d: dropout RNG reseeded",
                        len(rngs), self.dist.world)
            restore_rng(rngs[0])
            torch.manual_seed(int(state["step"]) * 1000 + self.dist.rank)
        self.step = self.resumed_from = int(state["step"])
        self.tokens, self.elapsed = int(state["tokens"]), float(state["elapsed_s"])
        self.acc_loss, self.acc_n = float(state["acc_loss"]), int(state["acc_n"])
        self.last_loss = float(state["last_loss"])
        log.info("resuming %s from %s (step %d)", self.desc, ck, self.step)
        return self.step

    # ------------------------------------------------------------------------------------- loop
    def rewrap(self) -> None:
        """Rebuild :attr:`net` (DDP registers only the parameters that require grad when it is built)."""
        self.net = self.wrap(self.model)

    def run(self, micro_step: Callable[[], tuple[torch.Tensor, int]],
            before_step: Callable[[int], bool | None] | None = None,
            callback: Callable[[int], None] | None = None, final_checkpoint: bool = False) -> dict[str, Any]:
        """Train up to ``steps``; SIGTERM -> checkpoint + :class:`Preempted`. Returns run statistics.

        `before_step(step)` runs before each optimisation step (e.g. to freeze/unfreeze parameters) and
        returns True when it changed which parameters are trainable; `callback(step)` runs after each
        completed step (tests use it to interrupt a run); `final_checkpoint` also checkpoints the last step
        (periodic checkpoints skip it).
        """
        main = self.dist.is_main
        losslog = LossLog(self.run_dir / "loss.csv", self.resumed_from) if main else None
        bar = tqdm(total=self.steps, initial=self.step, desc=self.desc, unit="step", mininterval=5.0,
                   disable=not main)
        progress = Progress(self.desc, self.steps, self.log_every, start=self.step, enabled=main, logger=log)
        params = [p for p in self.model.parameters()]
        self.rewrap()
        amp = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.bf16
               else contextlib.nullcontext())
        t0, base_elapsed, tokens0 = time.monotonic(), self.elapsed, self.tokens
        try:
            with SigtermFlag() as flag:
                while self.step < self.steps:
                    if before_step is not None and before_step(self.step):
                        self.rewrap()
                    self.model.train()
                    step_loss, step_tokens = 0.0, 0
                    no_sync = getattr(self.net, "no_sync", None)
                    for k in range(self.grad_accum):
                        last = k == self.grad_accum - 1
                        with contextlib.nullcontext() if last or no_sync is None else no_sync():
                            with amp:
                                loss, n_tokens = micro_step()
                            (loss / self.grad_accum).backward()
                        step_loss += float(loss.detach()) / self.grad_accum
                        step_tokens += n_tokens
                    step_loss = self.dist.mean(step_loss, self.device)
                    lr = float(self.optimizer.param_groups[0]["lr"])
                    for p in params:  # a sparse gradient that was not added into a dense one
                        if p.grad is not None and p.grad.is_sparse:
                            p.grad = p.grad.to_dense()
                    torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None],
                                                   self.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step += 1
                    self.tokens += step_tokens
                    self.last_loss = step_loss
                    self.acc_loss += step_loss
                    self.acc_n += 1
                    self.elapsed = base_elapsed + time.monotonic() - t0
                    progress.advance(step_tokens)
                    if self.step % self.log_every == 0 or self.step == self.steps:
                        if losslog is not None:  # the same numbers: loss.csv, the log line, the tracker
                            losslog.write(self.step, self.acc_loss / self.acc_n, lr, self.tokens, self.elapsed)
                        progress.emit(self.step, loss=self.acc_loss / self.acc_n, lr=lr)
                        self.acc_loss, self.acc_n = 0.0, 0
                    bar.update(1)
                    bar.set_postfix(loss=f"{step_loss:.4f}", refresh=False)
                    saved = False
                    if self.step % self.checkpoint_every == 0 and self.step < self.steps:
                        self.save()
                        saved = True
                    if callback is not None:
                        callback(self.step)
                    if self.dist.any(flag.received is not None, self.device):
                        if not saved:
                            self.save()
                        raise Preempted(128 + (flag.received or 15))
                if final_checkpoint and self.resumed_from != self.step:
                    self.save()
        finally:
            if losslog is not None:
                losslog.close()
            progress.close()
            bar.close()
        seconds = time.monotonic() - t0
        return {
            "steps": self.step,
            "tokens": self.tokens,
            "final_loss": self.last_loss,
            "elapsed_s": self.elapsed,
            "tokens_per_s": (self.tokens - tokens0) / seconds if seconds > 0 else float("nan"),
            "resumed_from_step": self.resumed_from,
        }


# ------------------------------------------------------------------------------ stage helpers
# Config keys that change how a run is operated but not what it computes: left out of the run
# fingerprint, so that e.g. a retry with another checkpoint interval still resumes.
OPERATIONAL_KEYS = frozenset({"checkpoint_every", "keep_checkpoints", "keep_final_checkpoint", "log_every",
                              "device", "processes", "select_tasks"})


def fingerprint_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`cfg` without :data:`OPERATIONAL_KEYS`."""
    return {k: v for k, v in cfg.items() if k not in OPERATIONAL_KEYS}


def load_model_dir(model_dir: Path) -> tuple[Any, Any]:
    """(AutoModelForMaskedLM in float32, AutoTokenizer) of a model directory; DataError if missing."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise DataError(f"model directory {model_dir} has no config.json")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"model directory {model_dir} has no fast tokenizer (tokenizer.json)")
    model = AutoModelForMaskedLM.from_pretrained(model_dir, dtype=torch.float32)
    return model, tokenizer


def max_positions(model: torch.nn.Module) -> int:
    """Longest input the position embeddings allow (RoBERTa-style models reserve padding_idx + 1)."""
    limit = int(getattr(model.config, "max_position_embeddings", 10**9))
    emb = getattr(model.base_model, "embeddings", None)
    pad_idx = getattr(emb, "padding_idx", None)
    return limit - (pad_idx + 1) if isinstance(pad_idx, int) else limit
