"""Script glue (langadapt.core.runtime, train.checkpoint.training_job): logs across attempts, PYTHONPATH for the conda envs, package versions."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import SimpleNamespace

from langadapt.core.provenance import packages_string
from langadapt.core.runtime import prepend_pythonpath
from langadapt.train.checkpoint import training_job


class Wildcards(dict):
    pass


def fake_snakemake(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(log=[str(tmp_path / "logs/pretrain.log")], rule="pretrain",
                           wildcards=Wildcards(recipe="r"), threads=1, params=SimpleNamespace())


def test_training_jobs_append_to_an_attempts_log_that_survives_log_deletion(tmp_path):
    sm, run_dir = fake_snakemake(tmp_path), tmp_path / "runs/r/pretrain"
    j = training_job(sm, run_dir)
    j.log.warning("received signal 15")
    Path(sm.log[0]).unlink()                      # what Snakemake does before the next attempt
    ckpt = run_dir / "checkpoints/step-00000090"
    ckpt.mkdir(parents=True)
    j = training_job(sm, run_dir)                  # an unfinished checkpoint (no state.json) is no resume
    assert "continuing" not in (tmp_path / "runs/r/pretrain.attempts.log").read_text()
    (ckpt / "state.json").write_text("{}")
    (ckpt / "trainer.pt").write_bytes(b"")
    j = training_job(sm, run_dir)
    j.log.info("resumed")
    logging.shutdown()
    history = (tmp_path / "runs/r/pretrain.attempts.log").read_text()
    assert history.index("received signal 15") < history.index("continuing an earlier attempt") \
        < history.index("resumed")
    rule_log = Path(sm.log[0]).read_text()
    assert "resumed" in rule_log and "received signal" not in rule_log


def test_prepend_pythonpath_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    prepend_pythonpath(tmp_path)
    prepend_pythonpath(tmp_path)
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/elsewhere"]
    prepend_pythonpath(tmp_path / "missing")      # a copied workflow without src/: nothing changes
    assert os.environ["PYTHONPATH"].split(os.pathsep) == [str(tmp_path), "/elsewhere"]


def test_packages_string_names_the_versions():
    fields = dict(f.split("=", 1) for f in packages_string().split())
    assert {"python", "torch", "transformers"} <= set(fields)
    assert fields["torch"].startswith("2.13")
