"""Data-parallel training with ``torchrun`` (DDP): process group, rank helpers and the launcher.

Under ``torchrun`` every process runs the same training function; :func:`init_distributed` reads
``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` from the environment and joins the process group (NCCL on
CUDA, gloo on CPU, so DDP is testable on a laptop with 2 CPU processes). Outside torchrun it returns a
single-process :class:`Dist` and nothing is initialised.

Data parallelism in this project is *global-batch* parallelism: every rank draws the same global
micro-batch (same sampler and masking seeds) and trains on its own slice of it, and the loss is normalised
by the number of masked tokens of the global micro-batch. The gradient after DDP's all-reduce is then that
of a single process training on the whole global micro-batch, so results do not depend on the number of
GPUs (up to floating-point summation order and dropout randomness) and a run can be resumed with another
world size.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as tdist

from langadapt.core.errors import ConfigError
from langadapt.train.settings import check_processes

log = logging.getLogger(__name__)


@dataclass
class Dist:
    """This process's place in the data-parallel group (world 1 = no DDP)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def mean(self, value: float, device: torch.device) -> float:
        """Mean of `value` over the ranks."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=device)
        tdist.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when `flag` is true on any rank (e.g. SIGTERM seen by one process)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
        tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out


def init_distributed(device: torch.device) -> Dist:
    """Join the torchrun process group if ``WORLD_SIZE`` > 1 (idempotent); else a single-process Dist."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not tdist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        tdist.init_process_group(backend=backend)
        log.info("joined %s process group: rank %d of %d", backend, rank, world)
    return Dist(rank=rank, world=world, local_rank=local_rank)


def rank_device(device: torch.device, dist: Dist) -> torch.device:
    """``cuda:{local_rank}`` for a CUDA run under DDP, else `device` unchanged."""
    if dist.enabled and device.type == "cuda":
        return torch.device("cuda", dist.local_rank)
    return device


def wrap_ddp(module: torch.nn.Module, device: torch.device, dist: Dist) -> torch.nn.Module:
    """`module` wrapped in DistributedDataParallel when the world is > 1 (only trainable parameters)."""
    if not dist.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def world_size_for(processes: int | None, allocated_gpus: int | None = None) -> int:
    """Processes to launch: `processes` if given, else one per GPU the job was allocated (the rule's
    ``gpu`` resource: the config's ``resources.gpus``) that CUDA can see, else one per visible CUDA device;
    1 on CPU."""
    check_processes(processes)
    if processes is not None:
        return processes
    if not torch.cuda.is_available():
        return 1
    visible = max(1, torch.cuda.device_count())
    return min(visible, int(allocated_gpus)) if allocated_gpus else visible


def launch(stage: str, kwargs: Mapping[str, Any], nproc: int, workdir: Path,
           extra_env: Mapping[str, str] | None = None) -> None:
    """Run ``langadapt.train.launch <stage> <args.json>`` under ``torchrun`` with `nproc` processes.

    The arguments are written to ``workdir/launch-args.json``; the child processes' output goes to this
    process's stdout/stderr (the rule's log). A non-zero exit (e.g. 143 after SIGTERM) is re-raised as
    ``SystemExit`` with the same status so that Snakemake / Slurm retry the job.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    args_file = workdir / "launch-args.json"
    args_file.write_text(json.dumps({"stage": stage, "kwargs": dict(kwargs)}, default=str))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    prefix = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    cmd = [*prefix, "--standalone", f"--nproc_per_node={nproc}", "-m", "langadapt.train.launch", str(args_file)]
    log.info("launching %d processes: %s", nproc, " ".join(cmd))
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen(cmd, env=env)
    # SIGTERM (Slurm preemption / time limit) goes on to torchrun, which passes it to the workers: they
    # checkpoint at the next step boundary and exit non-zero; this process waits for them.
    forward = {s: signal.signal(s, lambda signum, frame: proc.send_signal(signum))
               for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        returncode = proc.wait()
    finally:
        for s, old in forward.items():
            signal.signal(s, old)
    if returncode != 0:
        raise SystemExit(returncode if returncode > 0 else 128 - returncode)


def shard(rows: Sequence[int] | torch.Tensor, dist: Dist) -> slice:
    """This rank's slice of a global micro-batch of ``len(rows)`` rows (equal parts)."""
    n = len(rows)
    if n % dist.world:
        raise ConfigError(f"global micro-batch of {n} rows does not split over {dist.world} processes")
    per = n // dist.world
    return slice(dist.rank * per, (dist.rank + 1) * per)
