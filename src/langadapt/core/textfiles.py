"""Reading text files strictly: UTF-8 (optionally gzip-compressed), errors that name the file and line."""

from __future__ import annotations

import gzip
from pathlib import Path

from langadapt.core.errors import DataError


def line_of(data: bytes, offset: int) -> int:
    """1-based line number of byte `offset` in `data`."""
    return data.count(b"\n", 0, offset) + 1


def read_utf8(path: str | Path, what: str = "data file", encoding: str = "utf-8", gz: bool | None = None) -> str:
    """The text of `path` (gunzipped when `gz`, by default when the name ends in ``.gz``); DataError naming
    the file when it is missing or unreadable, and ``file: line N`` when it is not valid UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    gz = path.suffix == ".gz" if gz is None else gz
    try:
        data = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: line {line_of(data, e.start)}: invalid UTF-8 ({e.reason} at byte {e.start})"
                        ) from None


def read_lines(path: str | Path, what: str = "data file", encoding: str = "utf-8", gz: bool | None = None
               ) -> list[str]:
    """The lines of `path` (`read_utf8`) without their ``\\n`` / ``\\r\\n``; a final newline adds no line."""
    lines = read_utf8(path, what, encoding, gz).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln.removesuffix("\r") for ln in lines]
