"""The conda env files of envs/ (one per stage family, used with `snakemake --use-conda`).

No conda solver is reachable here, so this checks what can go wrong without one: each file parses, pins
every package exactly, agrees with the versions this repository installs with pip (constraints.txt), holds
every runtime requirement, puts CUDA PyTorch in the GPU stage envs; and every rule that runs code names one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
GPU_ENVS = {"train", "eval"}               # the envs of the rules that request GPUs
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
NOT_PYPI = {"python", "pip", "cuda-version"}
# the workflow engine and its report renderer run in the submitting environment, not in the job envs
ENGINE_ONLY = {"snakemake", "pygments"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(path: Path) -> dict[str, str]:
    """PyPI-normalized name -> pinned version of everything the env (and its post-deploy script) installs."""
    spec = yaml.safe_load(path.read_text())
    out = {}
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for req in dep["pip"]:
                m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", req)
                assert m, f"{path.name}: pip requirement {req!r} is not pinned with =="
                out[norm(m.group(1))] = m.group(2)
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)=([0-9][A-Za-z0-9_.+!]*)(=[A-Za-z0-9_.*]+)?", dep)
        assert m, f"{path.name}: conda dependency {dep!r} is not pinned as name=version[=build]"
        if m.group(1) not in NOT_PYPI:
            out[norm(CONDA_TO_PYPI.get(m.group(1), m.group(1)))] = m.group(2)
    deploy = path.with_name(f"{path.stem}.post-deploy.sh")
    if deploy.exists():
        for name, version in re.findall(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", deploy.read_text()):
            out[norm(name)] = version
    return out


def requirement_file(name: str) -> dict[str, str]:
    out = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            pkg, version = line.split("==")
            out[norm(pkg)] = version.strip()
    return out


def test_there_is_an_env_per_stage_family():
    assert {p.stem for p in ENVS} == {"data", "train", "eval"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.stem)
def test_env_pins_everything_in_agreement_with_constraints(path):
    spec = yaml.safe_load(path.read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"], "conda-forge only (no defaults channel)"
    versions = pinned(path)
    # what pip installs here: constraints.txt, plus the --no-deps packages of requirements-nodeps.txt
    constraints = {**requirement_file("constraints.txt"), **requirement_file("requirements-nodeps.txt")}
    disagree = {n: (v, constraints.get(n)) for n, v in versions.items() if constraints.get(n) != v}
    assert not disagree, f"{path.name}: versions differ from the pip pins (env, pip): {disagree}"
    needed = {**requirement_file("requirements.txt"), **requirement_file("requirements-nodeps.txt")}
    missing = sorted(set(needed) - set(versions) - ENGINE_ONLY)
    assert not missing, f"{path.name} lacks runtime requirements: {missing}"
    python = next(d for d in spec["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert re.fullmatch(r"python=3\.\d+\.\d+", python)


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.stem)
def test_gpu_stage_envs_get_cuda_pytorch(path):
    deps = [d for d in yaml.safe_load(path.read_text())["dependencies"] if isinstance(d, str)]
    torch = next(d for d in deps if d.startswith("pytorch="))
    if path.stem in GPU_ENVS:
        # conda-forge: the build string picks the CUDA variant, cuda-version pins the CUDA runtime
        assert torch.endswith("=cuda*"), torch
        assert any(re.fullmatch(r"cuda-version=\d+\.\d+", d) for d in deps), deps
    else:
        assert torch.endswith("=cpu_*") and not any(d.startswith("cuda-version") for d in deps)


def rule_blocks() -> dict[str, str]:
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=(?:rule|checkpoint) \w+:)", smk.read_text()):
            m = re.match(r"(?:rule|checkpoint) (\w+):", block)
            if m:
                blocks[m.group(1)] = block
    return blocks


def test_every_rule_that_runs_code_names_an_env():
    blocks = rule_blocks()
    assert len(blocks) > 15
    for rule, block in blocks.items():
        if not re.search(r"^\s+(script|shell|run|notebook):", block, re.M):
            continue  # an aggregation rule with inputs only
        m = re.search(r'^\s+conda:\s*\n\s+"\.\./envs/(\w+)\.yaml"', block, re.M)
        assert m, f"rule {rule} runs code but names no env of envs/"
        assert (REPO / "envs" / f"{m.group(1)}.yaml").is_file()
    # every rule that can request a GPU (its `gpu` resource, from the config's resources.gpus) runs in a
    # CUDA env
    gpu_rules = [rule for rule, block in blocks.items() if re.search(r"^\s+gpu=", block, re.M)]
    assert set(gpu_rules) >= {"pretrain", "realign", "evaluate", "hypernet", "similarity"}
    for rule in gpu_rules:
        env = re.search(r'"\.\./envs/(\w+)\.yaml"', blocks[rule]).group(1)
        assert env in GPU_ENVS, f"GPU rule {rule} runs in the CPU env {env}"
