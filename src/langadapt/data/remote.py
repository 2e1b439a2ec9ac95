"""Remote objects of a configuration: what each consumer reads from which hub repo, how a revision resolves to a
commit, the lock file of resolved commits, and the download that fetches one consumer's files (issue 16).

A :class:`Need` is one consumer's share of one repo (e.g. Glot500-c's ``jpn_Japn/train/*.arrow`` for the
``jpn_Jpan`` corpus): the glob patterns it downloads, the patterns that must each match a file for the
language to be covered, and the columns its tabular files must have. A :class:`Listing` answers, for a repo
at a revision, its commit, its files and a file's columns: :class:`HubListing` asks the hub (reading only
parquet footers and Arrow stream schemas, never whole files), :class:`RecordedListing` reads recorded
listings of the real repos (the offline test fixtures, ``tests/fixtures/remote-listings``).

The lock file (JSON) maps ``repo_type:repo_id@revision`` to ``{commit, files}``; the download jobs fetch
exactly those commits, so a whole reproduction reads one pinned revision of every remote and a changed remote
is a visible diff of the lock.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from langadapt.core.atomic import write_text_atomic
from langadapt.core.errors import DataError
from langadapt.core.progress import log_items
from langadapt.data.hub import fetched_patterns, hub_errors, is_hub_id, remote_key

log = logging.getLogger(__name__)

LOCK_VERSION = 1


@dataclass(frozen=True)
class Remote:
    """A hub repository at a revision (branch, tag, ``refs/convert/parquet`` or commit)."""

    repo_type: str
    repo_id: str
    revision: str = "main"

    @property
    def key(self) -> str:
        return remote_key(self.repo_type, self.repo_id, self.revision)


@dataclass(frozen=True)
class Need:
    """What one consumer reads from one remote.

    ``patterns``: globs to download; ``require``: globs that must each match at least one listed file (default:
    every pattern); ``columns``: columns every matching tabular file (parquet, Arrow, TSV with header) must have.
    """

    remote: Remote
    patterns: tuple[str, ...]
    require: tuple[str, ...] | None = None
    columns: tuple[str, ...] = ()

    def required(self) -> tuple[str, ...]:
        return self.patterns if self.require is None else self.require


class RemoteInputs:
    """What a source / dataset reads from outside the workflow, for the preflight and the download jobs (the
    base of corpus sources, parallel sources and evaluation datasets; by default: nothing)."""

    def remotes(self) -> list[Remote]:
        """The hub repos it reads (no request made): what the preflight resolves and locks."""
        return []

    def needs(self, lang: Any) -> list[Need]:
        """What loading a covered language reads from those repos (may consult the repo listing)."""
        return []

    def local_files(self, lang: Any) -> list[Path]:
        """Local files or folders loading a language reads (the preflight checks that they exist)."""
        return []


def matches(files: list[str], pattern: str) -> list[str]:
    """Files matching a glob the way ``snapshot_download(allow_patterns=...)`` does (fnmatch; ``*`` crosses
    ``/``, a trailing ``/`` means the folder)."""
    from huggingface_hub.utils import filter_repo_objects

    return list(filter_repo_objects(files, allow_patterns=[pattern]))


def check_need(need: Need, files: list[str], listing: Listing, commit: str) -> str | None:
    """None when the need is met by the repo's files (and its first tabular file has the columns), else why not."""
    for pattern in need.required():
        found = matches(files, pattern)
        if not found:
            return f"no file matches {pattern}"
        tabular = [f for f in found if f.endswith((".parquet", ".arrow", ".tsv"))]
        if need.columns and tabular:
            cols = listing.columns(need.remote, commit, tabular[0])
            if cols is not None and (missing := [c for c in need.columns if c not in cols]):
                return f"{tabular[0]} lacks column(s) {missing} (has {cols})"
    return None


# ---------------------------------------------------------------------------------------------- listings
class Listing(Protocol):
    def resolve(self, remote: Remote) -> str: ...

    def files(self, remote: Remote, commit: str) -> list[str]: ...

    def columns(self, remote: Remote, commit: str, path: str) -> list[str] | None: ...

    def sizes(self, remote: Remote, commit: str) -> dict[str, int]: ...


class HubListing:
    """The real hub (``HfApi``): revision -> commit, file listing, and the columns of a tabular file read from its
    parquet footer / Arrow stream schema / TSV header line only (``HfFileSystem`` range requests)."""

    def resolve(self, remote: Remote) -> str:
        from huggingface_hub import HfApi

        try:
            info = HfApi().repo_info(remote.repo_id, repo_type=remote.repo_type, revision=remote.revision)
        except hub_errors() as e:
            raise DataError(f"cannot resolve {remote.key} on the hub: {type(e).__name__}: {e}") from None
        return str(info.sha)

    def __init__(self) -> None:
        self._trees: dict[tuple[str, str], dict[str, int]] = {}

    def sizes(self, remote: Remote, commit: str) -> dict[str, int]:
        """Every file of the repo at `commit` with its size in bytes (one recursive tree listing)."""
        from huggingface_hub import HfApi
        from huggingface_hub.hf_api import RepoFile

        key = (remote.key, commit)
        if key not in self._trees:
            try:
                tree = HfApi().list_repo_tree(remote.repo_id, repo_type=remote.repo_type, revision=commit,
                                              recursive=True)  # fmt: skip
                self._trees[key] = {f.path: int(f.size) for f in tree if isinstance(f, RepoFile)}
            except hub_errors() as e:
                raise DataError(f"cannot list {remote.key} ({commit}): {type(e).__name__}: {e}") from None
        return self._trees[key]

    def files(self, remote: Remote, commit: str) -> list[str]:
        return sorted(self.sizes(remote, commit))

    def columns(self, remote: Remote, commit: str, path: str) -> list[str] | None:
        from huggingface_hub import HfFileSystem

        prefix = {"dataset": "datasets/", "model": "", "space": "spaces/"}[remote.repo_type]
        url = f"{prefix}{remote.repo_id}@{commit}/{path}"
        try:
            with HfFileSystem().open(url, "rb", block_size=1 << 16) as f:
                return read_columns(f, path)
        except hub_errors() as e:
            raise DataError(f"cannot read the schema of {url}: {type(e).__name__}: {e}") from None


def read_columns(f: Any, path: str) -> list[str]:
    """The column names of an open tabular file, reading only its schema: the parquet footer, the first
    message of an Arrow IPC stream (``datasets`` shards) or file, or a TSV's header line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.endswith(".parquet"):
            return list(pq.read_schema(f).names)
        if path.endswith(".arrow"):
            try:
                return list(pa.ipc.open_stream(f).schema.names)
            except pa.ArrowInvalid:
                f.seek(0)
                return list(pa.ipc.open_file(f).schema.names)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: cannot read its schema ({type(e).__name__}: {e})") from None
    return f.readline().decode("utf-8-sig").rstrip("\r\n").split("\t")


class RecordedListing:
    """Recorded listings of real repos: one JSON file per repo in ``folder`` with ``repo_type``, ``repo_id``,
    ``revisions`` ({revision: commit or null}), ``files`` (per revision, or one list) and ``columns``
    ({glob: [columns]}), plus the ``evidence`` they were recorded from. A repo or revision not recorded is
    reported as not found, as the hub would."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.repos: dict[tuple[str, str], dict[str, Any]] = {}
        for f in sorted(self.folder.glob("*.json")):
            try:
                rec = json.loads(f.read_text(encoding="utf-8"))
                self.repos[(rec["repo_type"], rec["repo_id"])] = rec
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(f"{f}: not a recorded listing ({type(e).__name__}: {e})") from None

    def _rec(self, remote: Remote) -> dict[str, Any]:
        rec = self.repos.get((remote.repo_type, remote.repo_id))
        if rec is None:
            raise DataError(f"{remote.repo_type} {remote.repo_id} not found (no recorded listing in {self.folder})")
        return rec

    def resolve(self, remote: Remote) -> str:
        revisions = self._rec(remote)["revisions"]
        if remote.revision not in revisions:
            raise DataError(f"{remote.key}: revision {remote.revision!r} not found (recorded: {sorted(revisions)})")
        return revisions[remote.revision] or f"recorded:{remote.revision}"

    def files(self, remote: Remote, commit: str) -> list[str]:
        files = self._rec(remote)["files"]
        return sorted(files[remote.revision] if isinstance(files, dict) else files)

    def sizes(self, remote: Remote, commit: str) -> dict[str, int]:
        return dict(self._rec(remote).get("sizes") or {})  # recorded listings mostly carry no sizes

    def columns(self, remote: Remote, commit: str, path: str) -> list[str] | None:
        for pattern, cols in self._rec(remote).get("columns", {}).items():
            if fnmatch.fnmatch(path, pattern):
                return list(cols)
        return None


# -------------------------------------------------------------------------------------------------- lock
@dataclass
class Lock:
    """Resolved commits (and file listings) of every remote of a configuration."""

    remotes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: str | Path) -> Lock:
        path = Path(path)
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != LOCK_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {LOCK_VERSION}")
            return cls(dict(data["remotes"]))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataError(f"{path}: not a langadapt lock file ({e}); delete it and rerun the preflight") from None

    def write(self, path: str | Path) -> None:
        text = json.dumps({"version": LOCK_VERSION, "remotes": dict(sorted(self.remotes.items()))}, indent=1)
        write_text_atomic(text + "\n", path)

    def commit(self, remote: Remote) -> str | None:
        entry = self.remotes.get(remote.key)
        return None if entry is None else str(entry["commit"])

    def diff(self, other: Lock) -> list[str]:
        """Lines describing what changed from `other` (the previous lock) to this one."""
        out = []
        for key in sorted(set(self.remotes) | set(other.remotes)):
            old, new = other.remotes.get(key), self.remotes.get(key)
            if old is None:
                out.append(f"+ {key} {new['commit']}")
            elif new is None:
                out.append(f"- {key} {old['commit']}")
            elif old["commit"] != new["commit"]:
                out.append(f"~ {key} {old['commit']} -> {new['commit']}")
        return out


# ---------------------------------------------------------------------------------------------- download
def download_patterns(need: Need, files: list[str]) -> list[str]:
    """The need's patterns, less ``*.bin`` weights of a model repo that has safetensors (the same weights)."""
    return fetched_patterns(need.remote.repo_type, need.patterns, files)


def download(needs: list[Need], lock: Lock, cache_dir: str | Path) -> list[dict[str, Any]]:
    """Fetch every need's files at its locked commit into the hub cache `cache_dir` (``snapshot_download``:
    files already there are not fetched again). Returns what was fetched, per need, for the download marker."""
    from huggingface_hub import snapshot_download

    out = []
    t0 = time.monotonic()
    for i, need in enumerate(needs, 1):
        commit = lock.commit(need.remote)
        if commit is None:
            raise DataError(f"{need.remote.key} is not in the lock file: rerun the preflight")
        patterns = download_patterns(need, lock.remotes[need.remote.key].get("files") or [])
        log.info("downloading %s @ %s: %s", need.remote.key, commit, ", ".join(patterns))
        try:
            root = Path(snapshot_download(need.remote.repo_id, repo_type=need.remote.repo_type, revision=commit,
                                          allow_patterns=patterns, cache_dir=str(cache_dir)))  # fmt: skip
        except hub_errors() as e:
            raise DataError(f"cannot download {need.remote.key} ({commit}): {type(e).__name__}: {e}") from None
        from huggingface_hub.utils import filter_repo_objects

        present = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        got = sorted(filter_repo_objects(present, allow_patterns=patterns))
        if missing := [p for p in need.required() if not matches(got, p)]:
            raise DataError(f"{need.remote.key} ({commit}): nothing downloaded for {missing}")
        size = sum((root / f).stat().st_size for f in got)
        log_items("downloaded", i, len(needs), t0, log, f"{need.remote.key}: {len(got)} file(s), {size / 1e6:.1f} MB")
        out.append({"remote": need.remote.key, "commit": commit, "files": got, "bytes": size})
    return out


def model_needs(name_or_path: str, revision: str | None, *, weights: bool = True) -> list[Need]:
    """What loading a model (or, ``weights=False``, only its tokenizer) from a hub id reads: config, tokenizer
    files and weights (``hub.MODEL_PATTERNS``); none for a local directory."""
    from langadapt.data.hub import MODEL_PATTERNS

    if not is_hub_id(name_or_path):
        return []
    patterns = MODEL_PATTERNS if weights else [p for p in MODEL_PATTERNS if not p.endswith((".safetensors", ".bin"))]
    return [Need(Remote("model", name_or_path, revision or "main"), tuple(patterns), require=("config.json",))]
