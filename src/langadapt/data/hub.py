"""Hub access shared by every remote source (corpora, translation pairs, evaluation datasets): a snapshot of only the files needed, and the repository's file listing, both at a given revision; errors name the repository and what was wanted. Honours HF_HUB_OFFLINE and the hub cache (cache_dir or HF_HUB_CACHE)."""

from __future__ import annotations

import logging
from pathlib import Path

from langadapt.core.errors import DataError

log = logging.getLogger(__name__)


def hub_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    return (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError)


def hub_snapshot(repo_id: str, revision: str, patterns: list[str], cache_dir: str | None, what: str) -> Path:
    """Download (or find in the cache) the files of a hub dataset repo matching ``patterns``."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, repo_type="dataset", revision=revision, allow_patterns=patterns,
                                   cache_dir=cache_dir)  # fmt: skip
    except hub_errors() as e:
        raise DataError(f"cannot fetch {what}: {e}") from None
    return Path(folder)


def hub_files(repo_id: str, revision: str, cache_dir: str | None, what: str) -> list[str]:
    """The file listing of a hub dataset repo: from the hub, or (offline / unreachable) the cached snapshot."""
    import huggingface_hub.constants as hf_constants
    from huggingface_hub import HfApi, snapshot_download

    if not hf_constants.HF_HUB_OFFLINE:
        try:
            return sorted(HfApi().list_repo_files(repo_id, repo_type="dataset", revision=revision))
        except hub_errors() as e:
            log.warning("cannot list %s on the hub (%s); using the cached snapshot", what, e)
    try:
        root = Path(snapshot_download(repo_id, repo_type="dataset", revision=revision, cache_dir=cache_dir,
                                      allow_patterns=["\0"], local_files_only=True))  # fmt: skip
    except hub_errors() as e:
        raise DataError(f"cannot list the files of {what} (offline and not in the hub cache): {e}") from None
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
