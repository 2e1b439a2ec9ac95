"""Shared fixtures: repository paths and a copy of the workflow in a temporary directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = ("workflow", "rules", "scripts", "envs", "configs", "config.yaml", "profiles", "slurm")


def copy_workflow(dest: Path) -> Path:
    """Copy what Snakemake needs (not results/) so that a test run writes only under `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part)
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks run many times faster on one thread than on two contended cores."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
