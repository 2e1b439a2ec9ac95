"""Stale Snakemake locks: a run killed hard (SIGKILL, a closed laptop lid, an out-of-memory kill) leaves
``.snakemake/locks/`` behind, and the next run stops with "Directory cannot be locked". ``langadapt
unlock-stale`` (run by ``make run`` first) removes those locks when no Snakemake process is working in the
directory, which is all ``snakemake --unlock`` does; a live run's locks are kept. Outputs the killed run left
half-written are redone by the next run (``rerun-incomplete`` in ``profiles/default``, the workflow profile
Snakemake picks up by itself).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def snakemake_processes() -> Iterator[tuple[int, Path]]:
    """(pid, working directory) of every running process whose command line runs Snakemake (Linux /proc;
    processes of other users that cannot be read are skipped)."""
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        # `snakemake ...`, `python .../bin/snakemake ...` or `python -m snakemake ...` (a shell command
        # string that mentions snakemake is one argument whose last path part is not `snakemake`)
        if "snakemake" in [Path(a.decode(errors="replace")).name for a in argv[:3]]:
            yield int(entry.name), cwd


def unlock_stale(workdir: str | os.PathLike = ".", running: Iterable[tuple[int, Path]] | None = None) -> list[Path]:
    """Remove the lock files of `workdir` when no Snakemake process runs in it; return the removed files.

    `running`: (pid, cwd) of the Snakemake processes (default: :func:`snakemake_processes`)."""
    workdir = Path(workdir).resolve()
    locks = sorted(p for p in (workdir / ".snakemake" / "locks").glob("*") if p.is_file())
    if not locks:
        return []
    busy = [pid for pid, cwd in (snakemake_processes() if running is None else running) if cwd.resolve() == workdir]
    if busy:
        log.info("%s is locked by running Snakemake process(es) %s: locks kept", workdir, busy)
        return []
    for lock in locks:
        lock.unlink(missing_ok=True)
    log.warning("removed %d lock(s) of an interrupted run in %s (no Snakemake process runs there); its "
                "incomplete outputs are redone (rerun-incomplete)", len(locks), workdir)
    return locks
