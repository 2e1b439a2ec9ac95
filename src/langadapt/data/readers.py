"""Local text files in the corpus source schema ``verse_id:int64, book:int16, text:string``: txt, tsv, jsonl,
parquet and Arrow IPC (optionally gzipped), with errors naming the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.textfiles import read_lines

SCHEMA = pa.schema([("verse_id", pa.int64()), ("book", pa.int16()), ("text", pa.string())])


def make_table(ids: Any, books: Any, texts: list[str]) -> pa.Table:
    arrays = [pa.array(ids, pa.int64()), pa.array(books, pa.int16()), pa.array(texts, pa.string())]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _file_format(path: Path, fmt: str | None) -> tuple[str, bool]:
    suffixes = [x.lower() for x in path.suffixes]
    gz = suffixes[-1:] == [".gz"]
    if fmt is None:
        base = suffixes[:-1] if gz else suffixes
        fmt = {".ndjson": "jsonl"}.get(base[-1], base[-1][1:]) if base else ""
    if fmt not in {"txt", "tsv", "jsonl", "parquet", "arrow"}:
        raise ConfigError(f"cannot tell the format of {path}: use .txt, .tsv, .jsonl, .parquet (optionally .gz) "
                          f"or .arrow")
    return fmt, gz


def _int_value(value: Any, where: str, column: str, hi: int) -> int:
    try:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        out = int(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: bad {column} value {value!r} (expected an integer)") from None
    if not 0 <= out <= hi:
        raise DataError(f"{where}: {column} value {out} out of range [0, {hi}]")
    return out


def _read_arrow(path: Path) -> pa.Table:
    """An Arrow IPC file: the stream format of ``datasets``' ``save_to_disk`` shards (Glot500-c on the hub),
    or the random-access file format."""
    with pa.memory_map(str(path)) as source:
        try:
            return pa.ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return pa.ipc.open_file(source).read_all()


def _records(path: Path, fmt: str, gz: bool, text_field: str) -> tuple[str, Iterator[tuple[int, Any]]]:
    """(unit, iterator of (line/row number, record dict)) for one file."""
    if fmt in ("parquet", "arrow"):
        try:
            table = pq.read_table(path) if fmt == "parquet" else _read_arrow(path)
        except (pa.ArrowException, OSError) as e:
            raise DataError(f"{path}: not a readable {fmt} file ({e})") from None
        if text_field not in table.column_names:
            raise DataError(f"{path}: no {text_field!r} column (columns: {table.column_names})")
        cols = [c for c in (text_field, "verse_id", "book") if c in table.column_names]
        return "row", enumerate(table.select(cols).to_pylist(), start=1)
    raw = read_lines(path, gz=gz)
    if fmt == "txt":
        return "line", ((n, {text_field: t}) for n, t in enumerate(raw, start=1))
    if fmt == "jsonl":
        return "line", ((n, _parse(path, n, t, None)) for n, t in enumerate(raw, start=1) if t.strip())
    header = raw[0].split("\t") if raw else []
    if text_field not in header:
        raise DataError(f"{path}: line 1: header has no {text_field!r} column (columns: {header})")
    return "line", ((n, _parse(path, n, t, header)) for n, t in enumerate(raw[1:], start=2) if t)


def _parse(path: Path, n: int, line: str, header: list[str] | None) -> Any:
    """One jsonl record (header None) or tsv record, with errors naming file and line."""
    if header is None:
        try:
            return json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {n}: invalid JSON ({e.msg})") from None
    fields = line.split("\t")
    if len(fields) != len(header):
        raise DataError(f"{path}: line {n}: {len(fields)} tab-separated fields, header has {len(header)}")
    return dict(zip(header, fields, strict=True))


def read_text_file(path: str | Path, text_field: str = "text", fmt: str | None = None) -> pa.Table:
    """Read one local text file into the source schema (plus an internal ``line`` column).

    Formats (by suffix, optionally ``.gz``, or ``fmt``): ``txt`` (one record per line), ``tsv`` (header
    line with ``text_field`` and optional ``verse_id``, ``book``; fields split on tabs, no quoting),
    ``jsonl`` (one object per line), ``parquet`` and ``arrow`` (Arrow IPC, e.g. Hugging Face ``datasets``
    shards; same columns). Without ``verse_id`` the id is the
    line number (record number for tsv/parquet); ``verse_id`` must be in every record or in none.
    Malformed input raises DataError naming the file and line (row for parquet).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    fmt, gz = _file_format(path, fmt)
    unit, records = _records(path, fmt, gz, text_field)
    ids: list[int] = []
    books: list[int] = []
    texts: list[str] = []
    lines: list[int] = []
    has_ids: bool | None = None
    for n, rec in records:
        where = f"{path}: {unit} {n}"
        if not isinstance(rec, dict) or text_field not in rec:
            raise DataError(f"{where}: no {text_field!r} field")
        text = rec[text_field]
        if not isinstance(text, str | None):
            raise DataError(f"{where}: {text_field!r} is not a string: {text!r}")
        if has_ids is None:
            has_ids = "verse_id" in rec
        elif has_ids != ("verse_id" in rec):
            raise DataError(f"{where}: verse_id must be given in every record or in none")
        texts.append(text or "")
        ids.append(_int_value(rec["verse_id"], where, "verse_id", 2**63 - 1) if has_ids else n - (fmt == "tsv"))
        books.append(_int_value(rec["book"], where, "book", 66) if rec.get("book") not in (None, "") else 0)
        lines.append(n)
    table = make_table(ids, books, texts).append_column("line", pa.array(lines, pa.int64()))
    return table.replace_schema_metadata({"ids": "file" if has_ids else "running"})
