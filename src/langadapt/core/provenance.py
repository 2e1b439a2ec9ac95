"""Provenance of every output: canonical JSON and its hash (a result row's ``config_hash``), the code
version (``git describe``) and the versions of the packages that computed it."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
_PACKAGES = ("torch", "transformers", "tokenizers", "sentencepiece", "pyarrow", "numpy", "snakemake")


def canonical(obj: Any) -> str:
    """Canonical JSON (sorted keys, no whitespace): equal settings give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def config_hash(obj: Any) -> str:
    return hashlib.sha256(canonical(obj).encode("utf-8")).hexdigest()[:12]


@lru_cache(maxsize=1)
def code_version() -> str:
    """`git describe` of the repository (with -dirty), or the package version outside git."""
    from langadapt import __version__

    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True,
        )
        return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def packages_string() -> str:
    """``python=3.11.7 torch=2.13.0 ...``: the package versions as one field of a result row."""
    return " ".join(f"{k}={v}" for k, v in package_versions().items())
