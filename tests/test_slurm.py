"""The workflow through a real Slurm cluster: `snakemake --profile slurm` with the repository's profile.

Needs a controller that answers and the executor plugin in ``.venv/slurm-plugins`` (`make install-slurm`);
`.ci/run` starts a one-node cluster on localhost (`.ci/local-slurm/start.sh`: partitions cpu + gpu, one
fake GPU GRES) and sets ``LANGADAPT_REQUIRE_SLURM=1``, which turns the skip below into a failure.

- the smoke workflow, with ``resources.gpus: 1``, runs to the end as Slurm jobs; the rules that request a
  GPU were allocated one on the gpu partition (the profile's slurm_gpu_partition, langadapt.dag.cluster),
  the rest none, on the cpu partition;
- preemption: the pretraining job, sent SIGTERM by ``scancel --signal=TERM`` (to its job steps, as
  ``--signal=TERM@300`` of the training rules does before the time limit), saves a checkpoint and fails;
  Snakemake resubmits it (``--retries``) and the retry resumes from that checkpoint and finishes.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, copy_workflow

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PLUGINS = Path(os.environ.get("LANGADAPT_SLURM_PLUGINS", REPO / ".venv/slurm-plugins"))
GPU_RULES = {"pretrain", "realign", "evaluate", "hypernet"}
pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def cluster_problem() -> str | None:
    if not shutil.which("sbatch"):
        return "no Slurm client (sbatch) on PATH"
    try:
        subprocess.run(["scontrol", "ping"], capture_output=True, timeout=15, check=True)
    except (OSError, subprocess.SubprocessError):
        return "no Slurm controller answers `scontrol ping`"
    partitions = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True).stdout.split()
    if not {"cpu", "gpu"} <= set(partitions):
        return f"the cluster has partitions {partitions}, the test profile needs cpu and gpu"
    if not (PLUGINS / "snakemake_executor_plugin_slurm").is_dir():
        return f"the Slurm executor plugin is not installed in {PLUGINS} (make install-slurm)"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    problem = cluster_problem()
    if problem:
        if os.environ.get("LANGADAPT_REQUIRE_SLURM") == "1":
            pytest.fail(f"LANGADAPT_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(problem)


def env() -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(PLUGINS), out.get("PYTHONPATH")) if p)
    out.setdefault("USER", "root" if os.getuid() == 0 else str(os.getuid()))
    return out


def snakemake_cmd(*args: str, timeout: int) -> list[str]:
    # timeout -k: the plugin can wait forever on a broken status command (local-slurm README)
    return ["timeout", "-k", "30", str(timeout), SNAKEMAKE, "--profile", "slurm",
            "--workflow-profile", "slurm-ci", *args]


def submitted(output: str) -> list[tuple[str, int]]:
    """(rule, Slurm job id) of every submission Snakemake reported."""
    return [(m.group(2), int(m.group(1))) for m in
            re.finditer(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", output)]


def sacct(job_ids: list[int]) -> dict[int, dict[str, str]]:
    out = subprocess.run(["sacct", "-X", "-P", "-n", "-j", ",".join(map(str, job_ids)),
                          "-o", "JobID,Partition,AllocTRES,State"], capture_output=True, text=True, check=True)
    rows = {}
    for line in out.stdout.splitlines():
        jid, part, tres, state = line.split("|")
        rows[int(jid)] = {"partition": part, "tres": tres, "state": state}
    return rows


@pytest.fixture(scope="module")
def slurm_smoke(cluster, tmp_path_factory) -> tuple[Path, str]:
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm") / "wf")
    shutil.copytree(REPO / "tests/fixtures/slurm-ci", workdir / "slurm-ci")
    cfg = yaml.safe_load((workdir / "configs/smoke.yaml").read_text())
    cfg["resources"]["gpus"] = 1  # the config, not the profile, says how many GPUs a stage uses
    (workdir / "configs/smoke_gpu.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = subprocess.run(snakemake_cmd("--configfile", "configs/smoke_gpu.yaml", timeout=1800),
                          cwd=workdir, capture_output=True, text=True, env=env())
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in (workdir / ".snakemake/slurm_logs").rglob("*.log"))
        pytest.fail(f"Slurm smoke run failed ({proc.returncode}):\n{out[-6000:]}\n{logs[-8000:]}")
    return workdir, out


def test_smoke_workflow_runs_as_slurm_jobs_with_gpus_for_gpu_rules(slurm_smoke):
    workdir, out = slurm_smoke
    jobs = submitted(out)
    rules = {rule for rule, _ in jobs}
    assert {"corpus", "base_model", "pretrain", "realign", "evaluate", "hypernet"} <= rules, rules
    acct = sacct([jid for _, jid in jobs])
    assert len(acct) == len(jobs)
    for rule, jid in jobs:
        row = acct[jid]
        assert row["state"] == "COMPLETED", (rule, jid, row)
        if rule in GPU_RULES:
            assert row["partition"] == "gpu" and "gres/gpu=1" in row["tres"], (rule, row)
        else:
            assert row["partition"] == "cpu" and "gres/gpu" not in row["tres"], (rule, row)
    table = pd.read_csv(workdir / "results/tables/results.csv")
    assert len(table) > 0 and table["value"].map(math.isfinite).all()
    assert set(table["recipe"]) >= {"tiny", "tiny_lapt"}


def test_sigterm_checkpoints_and_the_retry_resumes(slurm_smoke):
    workdir, _ = slurm_smoke
    cfg = yaml.safe_load((workdir / "configs/smoke_gpu.yaml").read_text())
    steps = 3000
    # no periodic checkpoint can happen: any checkpoint the retry finds was written on SIGTERM
    cfg["pretraining"]["mlm_tiny"].update(steps=steps, checkpoint_every=10**6, log_every=10)
    (workdir / "configs/preempt.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    loss_csv = workdir / "results/runs/tiny_lapt/pretrain/loss.csv"
    t0 = time.time()
    proc = subprocess.Popen(
        snakemake_cmd("--configfile", "configs/preempt.yaml", "--retries", "1",
                      "results/models/tiny_lapt/pretrain", timeout=900),
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env())
    try:
        victim = None
        deadline = time.time() + 300
        while victim is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            queue = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i %k"], capture_output=True, text=True).stdout
            running = [int(line.split()[0]) for line in queue.splitlines()
                       if line.split()[1:] == ["rule_pretrain_wildcards_tiny_lapt"]]
            fresh = loss_csv.is_file() and loss_csv.stat().st_mtime > t0
            if running and fresh and len(loss_csv.read_text().splitlines()) > 5:  # training is under way
                victim = running[0]
        assert victim is not None, "the pretraining job was never seen training"
        subprocess.run(["scancel", "--signal=TERM", str(victim)], check=True)
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-6000:]
    jobs = [jid for rule, jid in submitted(out) if rule == "pretrain"]
    assert len(jobs) == 2 and jobs[0] == victim, jobs
    acct = sacct(jobs)
    assert acct[jobs[0]]["state"] in {"FAILED", "CANCELLED"} and acct[jobs[1]]["state"] == "COMPLETED", acct
    training = json.loads((workdir / "results/models/tiny_lapt/pretrain/langadapt.json").read_text())["training"]
    assert training["steps"] == steps
    assert 0 < training["resumed_from_step"] < steps
    # Snakemake deletes the rule log before each attempt; the run's attempts log keeps both: the signal and
    # the checkpoint of the killed attempt, then the resume of the retry
    history = (workdir / "results/runs/tiny_lapt/pretrain.attempts.log").read_text()
    last = history[history.rindex("received signal 15"):]
    step = training["resumed_from_step"]
    assert f"saved checkpoint results/runs/tiny_lapt/pretrain/checkpoints/step-{step:08d}" in last
    assert last.index("continuing an earlier attempt") < last.index(f"(step {step})") < last.index("pretrain done")
    log = (workdir / "results/logs/models/tiny_lapt/pretrain.log").read_text()
    assert f"resuming pretrain from results/runs/tiny_lapt/pretrain/checkpoints/step-{step:08d}" in log
    # the loss log reads as one run: every logged step once, in order, up to the last
    logged = [int(row["step"]) for row in csv.DictReader(loss_csv.open())]
    assert logged == sorted(set(logged)) and logged[-1] == steps


REPRODUCE_SHAPED = '''
# workflow/reproduce.smk in miniature: the whole workflow twice, as Snakemake modules with renamed rules
from langadapt.config import read_yaml


module first:
    snakefile:
        "Snakefile"
    config:
        {**read_yaml("configs/smoke_gpu.yaml"), "_source": "configs/smoke_gpu.yaml"}
    replace_prefix:
        {"results/": "results/first/"}


use rule * from first as first_*


module second:
    snakefile:
        "Snakefile"
    config:
        {**read_yaml("configs/smoke_gpu.yaml"), "_source": "configs/smoke_gpu.yaml"}
    replace_prefix:
        {"results/": "results/second/"}


use rule * from second as second_*
'''


def test_module_renamed_rules_are_routed_by_their_gpu_request(slurm_smoke):
    """Rules renamed by `use rule * from MODULE as MODULE_*` (as in workflow/reproduce.smk) get no profile
    entry by name: their GPU jobs still go to the gpu partition and their CPU jobs to cpu."""
    workdir, _ = slurm_smoke
    (workdir / "workflow/reproduce_smoke.smk").write_text(REPRODUCE_SHAPED)
    targets = ["results/first/eval/tiny_lapt/srb_bible/seed1.csv", "results/second/eval/tiny/srb_bible/seed1.csv"]
    proc = subprocess.run(snakemake_cmd("-s", "workflow/reproduce_smoke.smk", *targets, timeout=1500),
                          cwd=workdir, capture_output=True, text=True, env=env())
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    jobs = submitted(out)
    rules = {rule for rule, _ in jobs}
    assert {"first_corpus", "first_pretrain", "first_evaluate", "second_evaluate"} <= rules, rules
    assert not rules & {"corpus", "pretrain", "evaluate"}  # every job came from a renamed rule
    acct = sacct([jid for _, jid in jobs])
    for rule, jid in jobs:
        row = acct[jid]
        assert row["state"] == "COMPLETED", (rule, row)
        if rule.split("_", 1)[1] in GPU_RULES:
            assert row["partition"] == "gpu" and "gres/gpu=1" in row["tres"], (rule, row)
        else:
            assert row["partition"] == "cpu" and "gres/gpu" not in row["tres"], (rule, row)
    for target in targets:
        assert (workdir / target).is_file()


def test_downloads_run_on_the_submit_host_and_compute_jobs_offline_on_the_cluster(slurm_smoke, tmp_path):
    """Issue 16 part 4 on a real cluster: a language's corpus from a hub repo (tests/fakehub.py serves it). The
    preflight and the download are local rules (never submitted); the corpus job is a Slurm job that reads the
    locked commit offline."""
    from fakehub import FakeHub
    from test_preflight import COMMIT_A, _deu_hub, write_remote_config

    workdir, _ = slurm_smoke
    hub = FakeHub(_deu_hub())
    try:
        config = write_remote_config(workdir, "smoke_gpu.yaml", tmp_path / "cache")
        proc = subprocess.run(snakemake_cmd("results/data/corpora/deu_Latn.parquet", "--configfile", config,
                                            timeout=900),
                              cwd=workdir, capture_output=True, text=True, env={**env(), "HF_ENDPOINT": hub.url})
    finally:
        hub.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    rules = {rule for rule, _ in submitted(out)}
    assert rules == {"corpus"}, rules  # preflight and download ran on the submit host
    # only that file of that commit was read (its schema by the preflight, its bytes by the download)
    assert {p for _, p in hub.log if "/resolve/" in p} == {f"/datasets/org/corpus/resolve/{COMMIT_A}/deu_Latn/train.parquet"}
    log = (workdir / "results/logs/corpus/deu_Latn.log").read_text()
    assert f"dataset:org/corpus@main = {COMMIT_A}" in log
    (jid,) = [j for r, j in submitted(out) if r == "corpus"]
    assert sacct([jid])[jid]["state"] == "COMPLETED"
