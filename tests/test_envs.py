"""The conda env files of envs/ (one per stage family, used with `snakemake --use-conda`).

No conda channel is reachable here, so this checks what can go wrong without one. The part a conda solver
must solve is as small as it can be: Python, pip and a C compiler from conda-forge, nothing else. Everything
else comes from PyPI and is exactly what CI installs and tests: the full dependency closure of
requirements.txt (read from the installed packages' metadata), each at its constraints.txt version; the
post-deploy scripts add requirements-nodeps.txt. The GPU stage envs get PyPI's Linux torch wheel (the CUDA
build), the data env the CPU build CI runs. Every rule that runs code names an env.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import REPO

ENVS = sorted((REPO / "envs").glob("*.yaml"))
GPU_ENVS = {"train", "eval"}               # the envs of the rules that request GPUs
CONDA = {"python", "pip", "c-compiler"}    # all that conda-forge supplies (eflomal builds from source)
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_file(name: str) -> dict[str, str]:
    out = {}
    for line in (REPO / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            pkg, version = line.split("==")
            out[norm(pkg)] = version.strip()
    return out


def installed_closure() -> set[str]:
    """Every package `pip install -r requirements.txt` installed here (requirements and their dependencies,
    transitively, for this platform, without extras)."""
    seen: set[str] = set()
    stack = list(requirement_file("requirements.txt"))
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in metadata.distribution(name).requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                stack.append(norm(r.name))
    return seen - {"setuptools"}  # comes with pip


def env_spec(path: Path) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(conda name -> version, PyPI name -> version, pip options) of an env file."""
    spec = yaml.safe_load(path.read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"], "conda-forge only (no defaults channel)"
    conda, pip, options = {}, {}, []
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for req in dep["pip"]:
                if req.startswith("--"):
                    options.append(req)
                    continue
                m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", req)
                assert m, f"{path.name}: pip requirement {req!r} is not pinned with =="
                pip[norm(m.group(1))] = m.group(2)
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)=([0-9][A-Za-z0-9_.+!]*)", dep)
        assert m, f"{path.name}: conda dependency {dep!r} is not pinned as name=version"
        conda[m.group(1)] = m.group(2)
    return conda, pip, options


def test_there_is_an_env_per_stage_family():
    assert {p.stem for p in ENVS} == {"data", "train", "eval"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.stem)
def test_conda_solves_only_python_pip_and_a_compiler(path):
    conda, _, _ = env_spec(path)
    assert set(conda) == CONDA, conda
    assert re.fullmatch(r"3\.\d+\.\d+", conda["python"])


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.stem)
def test_the_pip_set_is_exactly_what_ci_tests(path):
    _, pip, _ = env_spec(path)
    constraints = requirement_file("constraints.txt")
    closure = installed_closure()
    assert set(pip) == closure, (f"{path.name}: missing {sorted(closure - set(pip))}, "
                                 f"not installed by CI {sorted(set(pip) - closure)}")
    versions = {name: version.split("+")[0] for name, version in pip.items()}
    disagree = {n: (v, constraints.get(n)) for n, v in versions.items() if constraints.get(n) != v}
    assert not disagree, f"{path.name}: versions differ from constraints.txt (env, constraints): {disagree}"
    deploy = path.with_name(f"{path.stem}.post-deploy.sh").read_text()
    nodeps = dict(re.findall(r"([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+!-]+)", deploy))
    assert {norm(n): v for n, v in nodeps.items()} == requirement_file("requirements-nodeps.txt")
    assert "pip install --no-deps" in deploy


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.stem)
def test_gpu_stage_envs_get_cuda_pytorch(path):
    _, pip, options = env_spec(path)
    if path.stem in GPU_ENVS:
        # PyPI's Linux wheel of torch is the CUDA build (its CUDA runtime comes as nvidia-* wheels)
        assert "+" not in pip["torch"] and not options, (pip["torch"], options)
    else:
        assert pip["torch"].endswith("+cpu") and options == [CPU_INDEX], (pip["torch"], options)


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
    gpu_rules = [rule for rule, block in blocks.items() if re.search(r"^\s+\*\*gpu_resources\(", block, re.M)]
    assert set(gpu_rules) >= {"pretrain", "realign", "evaluate", "hypernet", "similarity"}
    for rule in gpu_rules:
        env = re.search(r'"\.\./envs/(\w+)\.yaml"', blocks[rule]).group(1)
        assert env in GPU_ENVS, f"GPU rule {rule} runs in the CPU env {env}"
