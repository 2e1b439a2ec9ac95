"""A run killed hard leaves locks and half-written outputs: the next `make run` goes on without manual steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from base64 import urlsafe_b64decode
from pathlib import Path

from langadapt.dag.locks import snakemake_processes, unlock_stale

from conftest import copy_workflow

BIN = Path(sys.executable).parent


def _locks(workdir: Path) -> list[Path]:
    return sorted((workdir / ".snakemake" / "locks").glob("*"))


def test_locks_of_a_dead_run_are_removed_and_a_live_runs_kept(tmp_path):
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("x")
    (locks / "0.output.lock").write_text("y")
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert unlock_stale(tmp_path, running=[(123, tmp_path)]) == []  # a snakemake works here: kept
    assert len(_locks(tmp_path)) == 2
    removed = unlock_stale(tmp_path, running=[(123, other)])  # only in another directory
    assert [p.name for p in removed] == ["0.input.lock", "0.output.lock"] and _locks(tmp_path) == []
    assert unlock_stale(tmp_path, running=[]) == []  # nothing to do


def test_a_running_snakemake_is_seen_with_its_directory(tmp_path):
    # a process whose argv[1] is a `snakemake` executable, as `.venv/bin/snakemake ...` runs
    fake = tmp_path / "snakemake"
    fake.write_text("import time; time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, str(fake), "--cores", "1"], cwd=tmp_path)
    try:
        for _ in range(50):
            if any(pid == proc.pid for pid, _ in snakemake_processes()):
                break
            time.sleep(0.1)
        assert (proc.pid, tmp_path.resolve()) in [(p, c.resolve()) for p, c in snakemake_processes()]
    finally:
        proc.kill()
        proc.wait()


def test_make_run_goes_on_after_a_run_killed_mid_job(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    cmd = [str(BIN / "snakemake"), "--cores", "2", "--configfile", "configs/smoke.yaml"]
    proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    incomplete = workdir / ".snakemake" / "incomplete"
    try:
        deadline = time.monotonic() + 300
        while not (incomplete.is_dir() and any(incomplete.iterdir())):  # a job has started writing
            assert proc.poll() is None and time.monotonic() < deadline, "no job started"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert _locks(workdir)
    # the killed job's output, half-written (the workflow's own writers are atomic, a user's rule may not be):
    # Snakemake's marker names are the url-safe base64 of the output path
    markers = [p for p in incomplete.rglob("*") if p.is_file()]
    assert markers
    output = workdir / urlsafe_b64decode(markers[0].name.lstrip("@")).decode()
    if not output.exists():
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("half-written")
    # `make run` first removes the dead run's locks ...
    dry = [*cmd, "-n", "--quiet", "rules"]
    unlock = subprocess.run([str(BIN / "langadapt"), "unlock-stale"], cwd=workdir, capture_output=True, text=True)
    assert unlock.returncode == 0 and "removed" in unlock.stderr and not _locks(workdir)
    # ... then the default workflow profile's rerun-incomplete redoes the half-written output, where a plain
    # snakemake would stop at it
    plain = subprocess.run([*dry, "--workflow-profile", "none"], cwd=workdir, capture_output=True, text=True)
    assert plain.returncode != 0 and "incomplete" in (plain.stderr + plain.stdout).lower()
    resumed = subprocess.run(dry, cwd=workdir, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
