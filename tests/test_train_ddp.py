"""Data-parallel pretraining under torchrun (2 CPU processes, gloo) and hard-kill resume."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_train_helpers import LANG_PREFIX, make_model_dir, repetitive, write_corpus

from langadapt.core import tracking
from langadapt.core.errors import ConfigError
from langadapt.core.runtime import LOG_FILES_ENV
from langadapt.train.checkpoint import latest_checkpoint
from langadapt.train.distributed import launch, world_size_for
from langadapt.train.mlm import accumulation, pretrain, resolve_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")
INVENTORY = sorted(LANG_PREFIX)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    model = make_model_dir(root / "model", dropout=0.0)  # no dropout: ranks and single process agree
    corpora = {lang: write_corpus(root / f"{lang}.parquet", repetitive(lang, 40 + 10 * k))
               for k, lang in enumerate(LANG_PREFIX)}
    return model, corpora


def _cfg(**kw):
    cfg = dict(steps=6, batch_size=8, grad_accum=2, seq_len=24, lr=3e-3, warmup_steps=1, checkpoint_every=3,
               log_every=1, seed=5, device="cpu", langsamp="both")
    cfg.update(kw)
    return cfg


def _weights(out: Path) -> dict[str, torch.Tensor]:
    w = load_file(out / "model.safetensors")
    w.update({f"langsamp.{k}": v for k, v in load_file(out / "langsamp.safetensors").items()})
    return w


def test_two_process_ddp_matches_one_process_on_the_same_global_batch(world, tmp_path):
    model, corpora = world
    single = pretrain(model, corpora, tmp_path / "single", tmp_path / "run1", _cfg(), inventory=INVENTORY)
    kwargs = {"model_dir": str(model), "corpus_paths": {k: str(v) for k, v in corpora.items()},
              "out_dir": str(tmp_path / "ddp"), "run_dir": str(tmp_path / "run2"),
              "cfg": _cfg(batch_size=4, processes=2), "inventory": INVENTORY, "provenance": {"recipe": "ddp"}}
    rule_log = tmp_path / "pretrain.log"  # as langadapt.core.runtime.job leaves it: emptied, then appended to
    rule_log.write_text("parent line\n")
    tracker = json.dumps({"backend": "tensorboard", "dir": str(tmp_path / "tb"), "run": "pretrain/ddp"})
    launch("pretrain", kwargs, nproc=2, workdir=tmp_path / "launch",
           extra_env={"LANGADAPT_THREADS": "1", LOG_FILES_ENV: str(rule_log), tracking.ENV: tracker})
    # rank 0's progress lines reach the rule's log; rank 1 logs to stderr only
    text = rule_log.read_text()
    assert text.startswith("parent line\n")
    assert "[rank 0]" in text and "[rank 1]" not in text
    assert re.findall(r"pretrain step (\d)/6 ", text) == [str(k) for k in range(1, 7)]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert len(runs) == 1  # rank 0 only
    acc = EventAccumulator(str(runs[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == list(range(1, 7))
    prov = json.loads((tmp_path / "ddp" / "langadapt.json").read_text())
    assert prov["training"]["processes"] == 2 and prov["training"]["effective_batch"] == 16
    assert prov["recipe"] == "ddp"
    a, b = _weights(tmp_path / "single"), _weights(tmp_path / "ddp")
    assert a.keys() == b.keys()
    moved = max(float((a[k] - load_file(model / "model.safetensors").get(k, a[k])).abs().max()) for k in a
                if not k.startswith("langsamp"))
    assert moved > 1e-3  # training happened
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), (k, float((a[k] - b[k]).abs().max()))
    la = (tmp_path / "run1" / "loss.csv").read_text().splitlines()
    lb = (tmp_path / "run2" / "loss.csv").read_text().splitlines()
    assert [r.split(",")[3] for r in la] == [r.split(",")[3] for r in lb]  # same global tokens per step
    for ra, rb in zip(la[1:], lb[1:], strict=True):
        assert abs(float(ra.split(",")[1]) - float(rb.split(",")[1])) < 1e-4
    assert single["steps"] == 6


def test_effective_batch_sets_accumulation():
    cfg = resolve_config({"batch_size": 32, "effective_batch": 1024})
    assert accumulation(cfg, 4) == 8 and accumulation(cfg, 1) == 32  # LangSAMP: 32 x 4 GPUs x 8
    assert accumulation(resolve_config({"grad_accum": 3}), 2) == 3
    with pytest.raises(ConfigError, match="effective_batch"):
        accumulation(resolve_config({"batch_size": 24, "effective_batch": 1000}), 1)
    with pytest.raises(ConfigError, match="processes"):
        resolve_config({"processes": 0})


_CHILD = """
import os, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from langadapt.train.mlm import pretrain
root = Path(sys.argv[1])
kill_at = int(sys.argv[2])
corpora = {{p.stem: p for p in sorted(root.glob("*_*.parquet"))}}
def maybe_die(step):
    if step == kill_at:
        os.kill(os.getpid(), 9)
pretrain(root / "model", corpora, root / "out", root / "run", {cfg}, inventory={inv}, callback=maybe_die)
"""


def test_sigkill_at_a_random_step_then_resume_gives_identical_weights(world, tmp_path):
    model, corpora = world
    cfg = _cfg(steps=10, checkpoint_every=2, batch_size=4, grad_accum=1)
    full = pretrain(model, corpora, tmp_path / "full", tmp_path / "run_full", cfg, inventory=INVENTORY)
    root = tmp_path / "killed"
    root.mkdir()
    (root / "model").symlink_to(model, target_is_directory=True)
    for lang, p in corpora.items():
        (root / f"{lang}.parquet").symlink_to(p)
    kill_at = random.Random(os.getpid()).randint(3, 9)
    script = textwrap.dedent(_CHILD.format(cfg=repr(cfg), inv=repr(INVENTORY)))
    proc = subprocess.run([sys.executable, "-c", script, str(root), str(kill_at)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    ck = latest_checkpoint(root / "run")
    assert ck is not None and int(ck.name.split("-")[1]) == kill_at - kill_at % 2
    assert not (root / "out").exists()
    t0 = time.monotonic()
    res = pretrain(root / "model", corpora, root / "out", root / "run", cfg, inventory=INVENTORY)
    assert res["resumed_from_step"] == kill_at - kill_at % 2, (kill_at, time.monotonic() - t0)
    a, b = _weights(tmp_path / "full"), _weights(root / "out")
    for k in a:
        assert torch.equal(a[k], b[k]), (k, kill_at)
    assert res["tokens"] == full["tokens"]


@pytest.mark.parametrize(("processes", "visible", "allocated", "expected"), [
    (None, 0, 4, 1),      # CPU torch (e.g. a fake-GPU Slurm node): one process whatever was allocated
    (None, 8, 2, 2),      # the job was allocated 2 of the node's 8 visible GPUs
    (None, 4, None, 4),   # nothing allocated through the rule: every visible GPU
    (None, 2, 4, 2),      # fewer visible than requested: never more processes than devices
    (3, 8, 2, 3),         # an explicit `processes` wins
])
def test_world_size_follows_the_allocated_gpus(monkeypatch, processes, visible, allocated, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: visible > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    assert world_size_for(processes, allocated) == expected
