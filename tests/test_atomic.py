"""Atomic outputs (langadapt.core.atomic): complete or absent, and readable by the group like any file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from langadapt.core.atomic import atomic_dir, atomic_file, atomic_files, save_figure, write_text_atomic


@pytest.fixture(params=[0o022, 0o007, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_get_the_mode_open_would_give_them(tmp_path, umask):
    write_text_atomic("a,b\n", tmp_path / "t.csv")
    with atomic_file(tmp_path / "f.bin") as tmp:
        tmp.write_bytes(b"x")
    with atomic_files(tmp_path / "x", tmp_path / "sub/y") as (a, b):
        a.write_text("1")
        b.write_text("2")
    with open(tmp_path / "plain", "w") as fh:  # the reference: a file written the ordinary way
        fh.write("p")
    expected = 0o666 & ~umask
    assert mode(tmp_path / "plain") == expected
    for name in ("t.csv", "f.bin", "x", "sub/y"):
        assert mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "plain", "sub", "t.csv", "x"]


def test_a_directory_and_what_libraries_wrote_into_it_get_the_default_modes(tmp_path, umask):
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "model.safetensors").write_bytes(b"w")
        os.chmod(tmp / "model.safetensors", 0o600)  # what safetensors' own temporary file leaves
        (tmp / "nested").mkdir(mode=0o700)
        (tmp / "nested" / "a.json").write_text("{}")
    assert mode(tmp_path / "model") == 0o777 & ~umask
    assert mode(tmp_path / "model/nested") == 0o777 & ~umask
    assert mode(tmp_path / "model/model.safetensors") == 0o666 & ~umask
    assert mode(tmp_path / "model/nested/a.json") == 0o666 & ~umask


def test_a_failure_leaves_no_partial_output(tmp_path):
    (tmp_path / "old.csv").write_text("old")
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "old.csv") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert (tmp_path / "old.csv").read_text() == "old"  # untouched
    with pytest.raises(RuntimeError), atomic_files(tmp_path / "old.csv", tmp_path / "new.csv",
                                                   clear_on_error=True) as (a, b):
        raise RuntimeError("boom")
    assert not (tmp_path / "old.csv").exists() and not (tmp_path / "new.csv").exists()  # no stale output
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "d") as tmp:
        (tmp / "f").write_text("x")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temporaries left either


def test_save_figure_is_atomic_and_readable(tmp_path, umask):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "plots/p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mode(out) == 0o666 & ~umask
    assert [p.name for p in out.parent.iterdir()] == ["p.png"]
