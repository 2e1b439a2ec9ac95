"""GPU routing on a Slurm cluster with the repository's profile (profiles/slurm): in a dry run with
`--profile slurm`, every job that requests GPUs shows the profile's GPU partition and every other job its
CPU partition, whatever its rule is called (workflow/Snakefile or the module-renamed rules of
workflow/reproduce.smk), and the GPU counts are the configs' (`resources.gpus`), not the profile's. The
partition a job shows is the `-p` the executor plugin submits it with (tests/test_slurm.py checks that on a
real cluster). Needs the plugin in ``.venv/slurm-plugins`` (`make install-slurm`) for the profile's
executor; skipped without it unless ``LANGADAPT_REQUIRE_SLURM=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, copy_workflow

PLUGINS = Path(os.environ.get("LANGADAPT_SLURM_PLUGINS", REPO / ".venv/slurm-plugins"))
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
PAPERS = {"langsamp": "configs/langsamp.yaml", "realignment": "configs/realignment.yaml",
          "vocab": "configs/vocab-specialization.yaml", "hyperofa": "configs/hyperofa.yaml"}
#: rules that request GPUs, and how many (`gpus`: the config's resources.gpus)
GPU_RULES = {"pretrain": lambda gpus: gpus, "pretrain_steps": lambda gpus: gpus,
             "realign": lambda gpus: min(gpus, 1), "evaluate": lambda gpus: min(gpus, 1),
             "evaluate_step": lambda gpus: min(gpus, 1), "hypernet": lambda gpus: min(gpus, 1),
             "similarity": lambda gpus: min(gpus, 1)}


@pytest.fixture(scope="module")
def plugin():
    if not (PLUGINS / "snakemake_executor_plugin_slurm").is_dir():
        if os.environ.get("LANGADAPT_REQUIRE_SLURM") == "1":
            pytest.fail(f"LANGADAPT_REQUIRE_SLURM=1 but the Slurm executor plugin is not in {PLUGINS}")
        pytest.skip(f"the Slurm executor plugin is not installed in {PLUGINS} (make install-slurm)")
    return PLUGINS


@dataclass
class Job:
    """A job of a dry-run listing."""

    name: str
    threads: int
    resources: dict[str, Any] = field(default_factory=dict)
    local: bool = False  # a local rule: runs on the submit host, not submitted


_COPY: list[Path] = []


def _workflow_copy() -> Path:
    """One copy of the workflow (no results/) for every dry run here: what a dry run lists depends on the
    outputs already present, and the checkout may hold a developer's results/."""
    if not _COPY:
        _COPY.append(copy_workflow(Path(tempfile.mkdtemp(prefix="routing-")) / "wf"))
    return _COPY[0]


def dry_run(*args: str) -> list[Job]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH"))
                                                       if p)}
    proc = subprocess.run([SNAKEMAKE, "-n", "--profile", "slurm", *args], cwd=_workflow_copy(),
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return parse_listing(proc.stdout)


def parse_listing(text: str) -> list[Job]:
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        m = re.match(r"(local)?rule (\w+):", block)
        if not m:
            continue
        threads = re.search(r"\n\s+threads: (\d+)", block)
        res = re.search(r"\n\s+resources: (.*)", block)
        resources = {}
        for item in (res.group(1).split(", ") if res else []):
            key, _, value = item.partition("=")
            resources[key] = int(value) if value.isdigit() else value
        jobs.append(Job(m.group(2), int(threads.group(1)) if threads else 1, resources, bool(m.group(1))))
    return jobs


def test_the_listing_parser_reads_rules_threads_and_resources():
    jobs = parse_listing("Building DAG of jobs...\nrule langsamp_pretrain:\n    input: a\n    threads: 2\n"
                         "    resources: tmpdir=/tmp, mem_mb=16000, mem=16 GB, gpu=4\n\nlocalrule all:\n"
                         "    input: b\n")
    assert [(j.name, j.threads, j.local) for j in jobs] == [("langsamp_pretrain", 2, False), ("all", 1, True)]
    assert jobs[0].resources == {"tmpdir": "/tmp", "mem_mb": 16000, "mem": "16 GB", "gpu": 4}


def check_routing(jobs: list[Job], gpus_of) -> dict[str, int]:
    """Assert the partition and GPU count of every submitted job; return the number of jobs per partition."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())["default-resources"]
    cpu, gpu_partition = profile["slurm_partition"], profile["slurm_gpu_partition"]
    assert cpu != gpu_partition
    counts: dict[str, int] = {}
    for job in jobs:
        if job.name == "all" or job.name.endswith("_all"):
            continue  # local target rules are not submitted
        gpu = int(job.resources.get("gpu", 0))
        partition = job.resources.get("slurm_partition")
        counts[partition] = counts.get(partition, 0) + 1
        assert partition == (gpu_partition if gpu > 0 else cpu), (job.name, gpu, partition)
        base = job.name.split("_", 1)[1] if job.name.split("_", 1)[0] in PAPERS else job.name
        expected = GPU_RULES[base](gpus_of(job.name)) if base in GPU_RULES else 0
        assert gpu == expected, (job.name, gpu, expected)
    return counts


def test_the_four_papers_in_one_dag_send_gpu_jobs_to_the_gpu_partition(plugin):
    gpus = {paper: yaml.safe_load((REPO / path).read_text())["resources"]["gpus"] for paper, path in PAPERS.items()}
    jobs = dry_run("-s", "workflow/reproduce.smk")
    counts = check_routing(jobs, lambda rule: gpus[rule.split("_", 1)[0]])
    # LangSAMP §4.1: 4 GPUs per run; every LangSAMP run exports its 5K-step models for downstream selection
    pretrain = [j for j in jobs if j.name == "langsamp_pretrain_steps"]
    assert len(pretrain) == 6 and all(j.resources["gpu"] == 4 for j in pretrain)
    assert sum(j.name == "langsamp_evaluate_step" for j in jobs) == 6 * 6 * 30
    assert counts["gpu"] > 2000 and counts["cpu"] > 300  # not vacuous: the whole reproduction was routed


@pytest.mark.parametrize("paper", sorted(PAPERS))
def test_each_paper_config_with_the_plain_snakefile(plugin, paper):
    gpus = yaml.safe_load((REPO / PAPERS[paper]).read_text())["resources"]["gpus"]
    jobs = dry_run("--configfile", PAPERS[paper])
    counts = check_routing(jobs, lambda rule: gpus)
    assert counts.get("gpu", 0) > 0 and counts.get("cpu", 0) > 0


def test_a_cpu_only_config_sends_nothing_to_the_gpu_partition(plugin):
    counts = check_routing(dry_run("--configfile", "configs/smoke.yaml"), lambda rule: 0)
    assert "gpu" not in counts and counts["cpu"] > 10


def test_gpu_resources_name_the_gpu_partition_only_for_gpu_jobs():
    from types import SimpleNamespace

    from langadapt.dag.cluster import gpu_resources, profile_value

    res = {"slurm_gpu_partition": SimpleNamespace(raw="'a100-queue'"), "slurm_partition": SimpleNamespace(raw="cpu")}
    assert profile_value(res, "slurm_gpu_partition") == "a100-queue"  # --default-resources "x='v'"
    assert profile_value(res, "slurm_partition") == "cpu"  # a profile's bare string
    assert profile_value(res, "missing") is None and profile_value(None, "slurm_partition") is None
    assert gpu_resources(4, res) == {"gpu": 4, "slurm_partition": "a100-queue"}
    assert gpu_resources(0, res) == {"gpu": 0}  # keeps the default partition
    assert gpu_resources(1, {}) == {"gpu": 1}  # local runs: no partition at all
