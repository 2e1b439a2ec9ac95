"""Atomic outputs: build in a temporary sibling, rename into place only when complete.

A failed job therefore never leaves a partial file or directory where Snakemake (or a user) would take
it for a finished output. Every file published here gets the mode a plain ``open(path, "w")`` would give
it (``0666`` minus the umask), not ``mkstemp``'s ``0600``: results on a shared cluster filesystem stay
readable by the rest of the group. This is the only module that renames outputs into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask (e.g. ``0o644``)."""
    return 0o666 & ~_umask()


@contextmanager
def atomic_dir(out_dir: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary directory next to `out_dir`; on success it replaces `out_dir`.

    On an exception the temporary directory is removed and an existing `out_dir` is left untouched. Before
    the rename every file in it gets the default mode (`default_file_mode`): libraries that write through
    their own temporary files (safetensors' ``model.safetensors``, for one) leave them at 0600.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _normalize_modes(tmp)
        if out.exists():
            old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _normalize_modes(root: Path) -> None:
    """Files under `root` get `default_file_mode`, folders (root included) ``0o777`` minus the umask."""
    file_mode, dir_mode = default_file_mode(), 0o777 & ~_umask()
    os.chmod(root, dir_mode)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, dir_mode if path.is_dir() else file_mode)


def publish(tmp: str | Path, out: str | Path) -> None:
    """Give a temporary file (``mkstemp``: mode 0600) the umask's default mode, then rename it onto `out`."""
    os.chmod(tmp, default_file_mode())
    os.replace(tmp, out)


@contextmanager
def atomic_files(*paths: str | Path, clear_on_error: bool = False) -> Iterator[list[Path]]:
    """Yield one temporary path beside each of `paths`; on success publish each onto its output.

    On any error the temporary files are removed (and, with `clear_on_error`, the outputs too, so that no
    stale output of an earlier run survives a failed one).
    """
    outs = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for p in outs:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
            os.close(fd)
            tmps.append(Path(name))
        yield tmps
        for t, p in zip(tmps, outs, strict=True):
            publish(t, p)
    except BaseException:
        for t in tmps:
            t.unlink(missing_ok=True)
        if clear_on_error:
            for p in outs:
                p.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_file(out: str | Path) -> Iterator[Path]:
    """`atomic_files` for one output: ``with atomic_file(out) as tmp: write(tmp)``."""
    with atomic_files(out) as (tmp,):
        yield tmp


def write_text_atomic(text: str, out: str | Path) -> Path:
    """Write `text` (UTF-8, newlines as given) to `out` atomically."""
    with atomic_file(out) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    return Path(out)


def save_figure(fig: Any, out_png: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib Figure to `out_png` atomically (parents created, no partial file on error)."""
    with atomic_file(out_png) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(out_png)
