"""Hub access shared by every remote object (corpora, translation pairs, evaluation datasets, models, tokenizers,
word vectors): a snapshot of only the files needed, the repository's file listing, one file; errors name the
repository and what was wanted.

Pinning (issue 16): the workflow's ``preflight`` writes a lock file of resolved commits
(:mod:`langadapt.data.remote`); a compute job's download markers point ``LANGADAPT_REMOTE_LOCK`` /
``LANGADAPT_REMOTE_CACHE`` at the commits and cache of its inputs (``langadapt.core.runtime.job``); every
access here then reads the locked commit of ``repo@revision`` (not the moving branch) from that cache, so that
the compute jobs, which run with ``HF_HUB_OFFLINE=1``, find what the download jobs fetched. Outside the workflow
(no lock) the given revision and ``cache_dir`` (default: the hub cache, ``HF_HUB_CACHE``) are used as they are.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from pathlib import Path

from langadapt.core.errors import DataError
from langadapt.core.runtime import CACHE_ENV, LOCK_ENV

log = logging.getLogger(__name__)


def hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    return (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError)


def remote_key(repo_type: str, repo_id: str, revision: str) -> str:
    """The lock file's key of one remote: ``dataset:cis-lmu/Glot500@main``."""
    return f"{repo_type}:{repo_id}@{revision}"


@functools.lru_cache(maxsize=8)
def _read_lock(path: str, mtime: float) -> dict[str, dict]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return dict(data["remotes"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a langadapt lock file ({type(e).__name__}: {e}); rerun the preflight") from None


def pinned(repo_type: str, repo_id: str, revision: str | None, cache_dir: str | None) -> tuple[str, str | None]:
    """(revision, cache_dir) to use for one remote: the locked commit and the workflow's cache when a lock is
    set (``LANGADAPT_REMOTE_LOCK``), else the given ones. A lock that lacks the remote is an error: the
    preflight did not see it, so nothing downloaded it."""
    revision = str(revision or "main")
    cache_dir = cache_dir or os.environ.get(CACHE_ENV) or None
    lock = os.environ.get(LOCK_ENV)
    if not lock:
        return revision, cache_dir
    if not Path(lock).is_file():
        raise DataError(f"lock file {lock} not found: run the preflight (`snakemake preflight`) first")
    entry = _read_lock(lock, Path(lock).stat().st_mtime).get(remote_key(repo_type, repo_id, revision))
    if entry is None:
        raise DataError(f"{repo_type} {repo_id}@{revision} is not in the lock file {lock}: rerun the preflight "
                        f"(`snakemake preflight` or `langadapt preflight`) so that it is resolved and downloaded")
    return str(entry["commit"]), cache_dir


def offline() -> bool:
    import huggingface_hub.constants as hf_constants

    return bool(hf_constants.HF_HUB_OFFLINE)


def _offline_hint(e: BaseException) -> str:
    if offline() and os.environ.get(LOCK_ENV):
        return f"{e} (compute jobs run offline: the download job of this input did not fetch it)"
    return str(e)


def hub_snapshot(repo_id: str, revision: str, patterns: list[str], cache_dir: str | None, what: str,
                 repo_type: str = "dataset") -> Path:  # fmt: skip
    """Download (or find in the cache) the files of a hub repo matching ``patterns``."""
    from huggingface_hub import snapshot_download

    revision, cache_dir = pinned(repo_type, repo_id, revision, cache_dir)
    try:
        folder = snapshot_download(repo_id, repo_type=repo_type, revision=revision, allow_patterns=patterns,
                                   cache_dir=cache_dir)  # fmt: skip
    except hub_errors() as e:
        raise DataError(f"cannot fetch {what}: {_offline_hint(e)}") from None
    return Path(folder)


def is_hub_id(name_or_path: str) -> bool:
    """Whether a ``name_or_path`` names a hub repo (``org/name`` or ``name``) rather than a local directory."""
    p = Path(name_or_path)
    return not (p.exists() or p.is_absolute() or name_or_path.startswith((".", "~")) or name_or_path.count("/") > 1)


def hub_file(repo_id: str, filename: str, revision: str | None, cache_dir: str | None, what: str,
             repo_type: str = "model") -> Path:  # fmt: skip
    """Download (or find in the cache) one file of a hub repo."""
    from huggingface_hub import hf_hub_download

    revision, cache_dir = pinned(repo_type, repo_id, revision, cache_dir)
    try:
        return Path(hf_hub_download(repo_id, filename, repo_type=repo_type, revision=revision, cache_dir=cache_dir))
    except hub_errors() as e:
        raise DataError(f"cannot fetch {what}: {_offline_hint(e)}") from None


def local_or_hub_dir(name_or_path: str, revision: str | None, cache_dir: str | None, what: str,
                     patterns: list[str] | None = None) -> str:  # fmt: skip
    """A model/tokenizer given as a local directory (returned as is) or a hub model id (its snapshot folder,
    pinned like every other remote): what ``from_pretrained`` reads, so that it never reaches the hub."""
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    if not is_hub_id(name_or_path):
        raise DataError(f"cannot load {what}: no such directory: {name_or_path}")
    patterns = fetched_patterns("model", patterns or MODEL_PATTERNS, locked_files("model", name_or_path, revision or "main"))
    return str(hub_snapshot(name_or_path, revision or "main", patterns, cache_dir, what, "model"))


def fetched_patterns(repo_type: str, patterns: list[str] | tuple[str, ...], files: list[str]) -> list[str]:
    """The patterns a download fetches, and a job must ask the cache for (the hub client checks a snapshot's
    completeness against them): a model repo with safetensors drops ``*.bin``, the same weights twice."""
    if repo_type == "model" and any(f.endswith(".safetensors") for f in files):
        return [p for p in patterns if not p.endswith(".bin")]
    return list(patterns)


def locked_files(repo_type: str, repo_id: str, revision: str) -> list[str]:
    """The repo's file listing recorded in the active lock (none without a lock)."""
    lock = os.environ.get(LOCK_ENV)
    if not lock or not Path(lock).is_file():
        return []
    entry = _read_lock(lock, Path(lock).stat().st_mtime).get(remote_key(repo_type, repo_id, revision)) or {}
    return list(entry.get("files") or [])


# The files of a model repo that `from_pretrained` of a model + fast tokenizer reads (weights in safetensors or,
# in older repos, pytorch_model.bin; the download job drops *.bin when safetensors exist, langadapt.data.remote).
MODEL_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "pytorch_model.bin"]


def hub_files(repo_id: str, revision: str, cache_dir: str | None, what: str, repo_type: str = "dataset") -> list[str]:
    """The file listing of a hub repo: the recorded listing of the preflight's lock when there is one, else the
    hub's, else (offline / unreachable) the cached snapshot."""
    from huggingface_hub import HfApi, snapshot_download

    if recorded := locked_files(repo_type, repo_id, str(revision or "main")):
        return sorted(recorded)
    revision, cache_dir = pinned(repo_type, repo_id, revision, cache_dir)
    if not offline():
        try:
            return sorted(HfApi().list_repo_files(repo_id, repo_type=repo_type, revision=revision))
        except hub_errors() as e:
            log.warning("cannot list %s on the hub (%s); using the cached snapshot", what, e)
    try:
        root = Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, cache_dir=cache_dir,
                                      allow_patterns=["\0"], local_files_only=True))  # fmt: skip
    except hub_errors() as e:
        raise DataError(f"cannot list the files of {what} (offline and not in the hub cache): {e}") from None
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
