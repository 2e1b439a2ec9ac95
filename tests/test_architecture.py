"""The package tree: stages import downwards only (no cycles, neither between modules nor between stage
packages), the DAG is built without torch, modules stay small, and library modules import no private
helper of another module."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = SRC / "langadapt"

#: The stage packages from the bottom up (docs/architecture.md): a package may import only packages
#: listed before it. `config` sits above the stages because it checks every section of a config with
#: that stage's own (torch-free) checker; `dag` is what the Snakefile reads while it builds the DAG.
LAYERS = ["core", "data", "models", "vectors", "hypernet", "vocab", "train", "realign", "evaluation", "report",
          "config", "dag"]  # fmt: skip
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        rel = p.relative_to(SRC).with_suffix("")
        mods[".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)] = p
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return name or None


def _imports(module: str) -> set[str]:
    """langadapt modules `module` imports, at module level or inside functions."""
    path = MODULES[module]
    base = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                mod = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            r = _resolve(t) if t.startswith("langadapt") else None
            if r and r != module and not module.startswith(r + "."):
                out.add(r)
    return out


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules():
    assert _cycles({m: _imports(m) for m in MODULES}) == []


def test_every_stage_package_is_in_the_layer_list():
    packages = {p.name for p in PKG.iterdir() if (p / "__init__.py").is_file()} - {"resources"}
    assert packages == set(LAYERS)


def test_packages_import_only_the_layers_below_them():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for module in MODULES:
        src = _package(module)
        for target in _imports(module):
            dst = _package(target)
            if src and dst and src != dst and rank[dst] > rank[src]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_library_modules_import_no_private_helper_of_another_module():
    private = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("langadapt"):
                private += [f"{module}: {node.module}.{a.name}" for a in node.names
                            if a.name.startswith("_") and a.name != "__version__"]
    assert private == []


def test_modules_are_small():
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()}
    assert {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_no_module_named_like_snakemakes_workflow_object():
    assert "langadapt.workflow" not in MODULES


@pytest.mark.parametrize("configfile", ["config.yaml", "configs/smoke.yaml", "configs/langsamp.yaml",
                                        "configs/realignment.yaml", "configs/vocab-specialization.yaml",
                                        "configs/hyperofa.yaml"])
def test_the_dag_is_built_without_torch(configfile):
    """A dry run of the workflow with torch made unimportable: the Snakefile, the rule files and everything
    the config checks call (each stage's settings checker) must not need it."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError
        "from snakemake.cli import main\n"
        f"sys.argv = ['snakemake', '-n', '--quiet', 'rules', '--configfile', {configfile!r}]\n"
        "main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


def test_the_config_and_dag_modules_do_not_import_torch():
    code = ("import sys\n"
            "import langadapt.config, langadapt.dag.targets, langadapt.dag.snakemake_patch, langadapt.vocab.spec\n"
            "import langadapt.vectors, langadapt.evaluation.tasks, langadapt.train.settings\n"
            "from langadapt.config import load_config\n"
            "from langadapt.dag.targets import targets\n"
            "targets(load_config('configs/smoke.yaml'))\n"
            "print('torch' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "False"


def _package_map() -> dict[str, set[str]]:
    """``{package: {file names}}`` from the code block under "## Package map" in docs/architecture.md."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = doc.split("## Package map", 1)[1].split("```", 2)[1]
    out: dict[str, set[str]] = {}
    current = None
    for line in block.splitlines():
        head = re.match(r"^  ([a-z_]+)/", line)
        if head:
            current = head.group(1)
            out[current] = set()
            line = line[head.end():]
        if current:
            out[current] |= set(re.findall(r"\b([a-z_0-9]+\.py)\b", line))
    return out


def test_the_package_map_in_the_docs_matches_the_tree():
    documented = _package_map()
    actual = {pkg: {p.name for p in (PKG / pkg).rglob("*.py") if p.name != "__init__.py"} for pkg in LAYERS}
    assert documented == actual


def test_dotted_references_in_docs_and_configs_name_existing_modules():
    """After a move, no README, doc, config or docstring keeps pointing at a module that is gone."""
    import importlib

    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "config.yaml",
             *(ROOT / "configs").glob("*.yaml"), ROOT / "workflow/schemas/config.schema.yaml",
             *(ROOT / "rules").glob("*.smk"), *PKG.rglob("*.py")]
    missing = set()
    for path in files:
        # `langadapt.json` is the provenance file, `langadapt.lang` a Parquet metadata key
        text = re.sub(r"\blangadapt\.(json|lang)\b", "", path.read_text(encoding="utf-8"))
        for ref in re.findall(r"\blangadapt(?:\.[A-Za-z_]\w*)+", text):
            parts = ref.split(".")
            # the longest importable prefix, then attributes
            for k in range(len(parts), 0, -1):
                name = ".".join(parts[:k])
                if name in MODULES:
                    obj = importlib.import_module(name)
                    for attr in parts[k:]:
                        if not hasattr(obj, attr):
                            missing.add(f"{path.relative_to(ROOT)}: {ref}")
                            break
                        obj = getattr(obj, attr)
                    break
            else:
                missing.add(f"{path.relative_to(ROOT)}: {ref}")
    assert sorted(missing) == []


def test_functions_are_short():
    """Function bodies (docstrings aside) stay under ~75 lines: long procedures are split into named steps."""
    long = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                has_doc = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                start = body[1].lineno if has_doc and len(body) > 1 else body[0].lineno
                if node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long[f"{module}.{node.name}"] = node.end_lineno - start + 1
    assert long == {}
