"""Shared resumable-training machinery: config merge, run dirs, checkpoints, RNG, SIGTERM, loss log."""

from __future__ import annotations

import json
import os
import random
import signal

import numpy as np
import pytest
import torch

from langadapt.core.errors import ConfigError
from langadapt.train.checkpoint import (
    LossLog,
    SigtermFlag,
    capture_rng,
    checkpoint_dirs,
    fingerprint,
    inputs_digest,
    latest_checkpoint,
    load_checkpoint,
    prepare_run_dir,
    restore_rng,
    save_checkpoint,
    save_model_dir,
)
from langadapt.train.loop import make_scheduler
from langadapt.train.settings import merge_config


def test_merge_config_names_unknown_key():
    assert merge_config({"b": 3}, {"a": 1, "b": 2}, "pretrain") == {"a": 1, "b": 3}
    with pytest.raises(ConfigError, match="'lrate'"):
        merge_config({"lrate": 1}, {"lr": 1}, "pretrain")


def test_fingerprint_is_canonical(tmp_path):
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.txt").write_text("x")
    (tmp_path / "f.txt").write_text("y")
    digest = inputs_digest({"model": tmp_path / "d", "corpus": tmp_path / "f.txt"})
    assert set(digest) == {"model/x.txt", "corpus"}


def test_checkpoints_are_atomic_and_pruned(tmp_path):
    for step in (5, 10, 15):
        save_checkpoint(tmp_path, step, {"w": torch.full((2,), float(step))}, {"pos": step}, keep=2)
    assert [d.name for d in checkpoint_dirs(tmp_path)] == ["step-00000010", "step-00000015"]
    (tmp_path / "checkpoints" / ".tmp-step-00000020-1").mkdir()  # a half-written one is ignored
    (tmp_path / "checkpoints" / "step-00000025").mkdir()  # incomplete: no files
    tensors, state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state == {"step": 15, "pos": 15} and torch.equal(tensors["w"], torch.full((2,), 15.0))


def test_rng_capture_restore_roundtrip(tmp_path):
    state = capture_rng()
    a = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(2), random.random()
    restore_rng(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    # the state survives torch.save/load(weights_only=True)
    restore_rng(state)
    torch.save(state, tmp_path / "rng.pt")
    restore_rng(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), a[0])


def test_run_dir_of_another_config_is_moved_aside(tmp_path):
    run = tmp_path / "run"
    prepare_run_dir(run, "a" * 64, {"config": {"lr": 1}})
    save_checkpoint(run, 3, {}, {})
    prepare_run_dir(run, "a" * 64, {"config": {"lr": 1}})  # same fingerprint: kept
    assert latest_checkpoint(run) is not None
    prepare_run_dir(run, "b" * 64, {"config": {"lr": 2}})
    assert latest_checkpoint(run) is None
    assert json.loads((run / "run.json").read_text())["fingerprint"] == "b" * 64
    aside = tmp_path / f"run.stale-{'a' * 12}"
    assert latest_checkpoint(aside) is not None


def test_sigterm_sets_flag_and_restores_handler():
    before = signal.getsignal(signal.SIGTERM)
    with SigtermFlag() as flag:
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.received == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_loss_log_drops_rows_after_resume_step(tmp_path):
    log = LossLog(tmp_path / "loss.csv", None)
    for s in (1, 2, 3, 4):
        log.write(s, 1.0 / s, 1e-4, 10 * s, 0.5 * s)
    log.close()
    log = LossLog(tmp_path / "loss.csv", resume_step=2)
    log.write(3, 0.3, 1e-4, 30, 1.5)
    log.close()
    lines = (tmp_path / "loss.csv").read_text().splitlines()
    assert lines[0] == "step,loss,lr,tokens,elapsed_s"
    assert [ln.split(",")[0] for ln in lines[1:]] == ["1", "2", "3"]


def test_linear_schedule_with_warmup():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, steps=10, warmup_steps=2, schedule="linear")
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
    with pytest.raises(ConfigError):
        make_scheduler(opt, 10, 0, "cosine")


class _Saver:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def save_pretrained(self, d):
        os.makedirs(d, exist_ok=True)
        if self.fail:
            raise RuntimeError("disk full")
        with open(os.path.join(d, "model.safetensors"), "w") as f:
            f.write("new")


def test_save_model_dir_replaces_atomically(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_text("old")
    (tmp_path / "loss.csv").write_text("step,loss\n")
    with pytest.raises(RuntimeError):
        save_model_dir(_Saver(fail=True), _Saver(), out, {"recipe": "r"})
    assert (out / "model.safetensors").read_text() == "old"  # failed save leaves the old output intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.csv", "out"]  # and no temp dir
    save_model_dir(_Saver(), _Saver(), out, {"recipe": "r"}, tmp_path / "loss.csv")
    assert (out / "model.safetensors").read_text() == "new"
    assert json.loads((out / "langadapt.json").read_text()) == {"recipe": "r"}
    assert (out / "loss.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.csv", "out"]
