"""Local text files in the corpus source schema ``verse_id:int64, book:int16, text:string``: txt, tsv, jsonl,
parquet and Arrow IPC (optionally gzipped), with errors naming the file and line."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from langadapt.core.errors import ConfigError, DataError
from langadapt.core.textfiles import line_of

SCHEMA = pa.schema([("verse_id", pa.int64()), ("book", pa.int16()), ("text", pa.string())])


def make_table(ids: Any, books: Any, texts: list[str] | pa.Array) -> pa.Table:
    text = texts.cast(pa.string()) if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    arrays = [pa.array(ids, pa.int64()), pa.array(books, pa.int16()), text]
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


BATCH_ROWS = 1 << 16  # records per batch of the streaming readers (~6 MB of Bible-length text)


def _arrow_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Record batches of an Arrow IPC file: the stream format of ``datasets``' ``save_to_disk`` shards
    (Glot500-c on the hub), or the random-access file format."""
    with pa.memory_map(str(path)) as source:
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            source.seek(0)
            f = pa.ipc.open_file(source)
            for i in range(f.num_record_batches):
                yield f.get_batch(i)
            return
        yield from reader


def _columnar_batches(path: Path, fmt: str, text_field: str) -> Iterator[pa.Table]:
    """Tables (text_field, verse_id?, book?) of a Parquet or Arrow file, batch by batch."""
    try:
        if fmt == "parquet":
            pf = pq.ParquetFile(str(path))
            names = pf.schema_arrow.names
            if text_field not in names:
                raise DataError(f"{path}: no {text_field!r} column (columns: {names})")
            cols = [c for c in (text_field, "verse_id", "book") if c in names]
            batches: Iterator[pa.RecordBatch] = pf.iter_batches(batch_size=BATCH_ROWS, columns=cols)
        else:
            batches = _arrow_batches(path)
        for batch in batches:
            if text_field not in batch.schema.names:
                raise DataError(f"{path}: no {text_field!r} column (columns: {batch.schema.names})")
            cols = [c for c in (text_field, "verse_id", "book") if c in batch.schema.names]
            yield pa.Table.from_batches([batch.select(cols)])
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable {fmt} file ({e})") from None


def _int_column(table: pa.Table, column: str, path: Path, first_row: int, hi: int) -> np.ndarray:
    """An integer column as int64 (nulls -> 0 for ``book``), with errors naming the file and row."""
    col = table.column(column).combine_chunks()
    if column == "book":
        col = pc.fill_null(col, 0) if not pa.types.is_string(col.type) else pc.if_else(
            pc.equal(pc.fill_null(col, ""), ""), "0", col)
    try:
        values = col.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for i, v in enumerate(col.to_pylist()):  # error path: find the row
            _int_value(v, f"{path}: row {first_row + i}", column, hi)
        raise
    arr = values.to_numpy(zero_copy_only=False)
    if col.null_count or ((arr < 0) | (arr > hi)).any():
        bad = int(np.flatnonzero(pc.is_null(col).to_numpy(zero_copy_only=False) | (arr < 0) | (arr > hi))[0])
        _int_value(col[bad].as_py(), f"{path}: row {first_row + bad}", column, hi)
    return arr


def _columnar_tables(path: Path, fmt: str, text_field: str) -> Iterator[pa.Table]:
    """Source-schema tables (+ ``line``) of a Parquet/Arrow file; ids are row numbers when the file has none."""
    row = 1
    for t in _columnar_batches(path, fmt, text_field):
        n = t.num_rows
        text = t.column(text_field)
        if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type) or pa.types.is_null(text.type)):
            raise DataError(f"{path}: row {row}: {text_field!r} is not a string column ({text.type})")
        lines = np.arange(row, row + n)
        ids = _int_column(t, "verse_id", path, row, 2**63 - 1) if "verse_id" in t.column_names else lines
        books = _int_column(t, "book", path, row, 66) if "book" in t.column_names else np.zeros(n, np.int64)
        out = make_table(ids, books, pc.fill_null(text.cast(pa.string()), "").combine_chunks())
        yield out.append_column("line", pa.array(lines, pa.int64())).replace_schema_metadata(
            {"ids": "file" if "verse_id" in t.column_names else "running"})
        row += n


def text_blocks(path: Path, gz: bool) -> Iterator[tuple[int, list[str]]]:
    """(first line number, lines) blocks of a UTF-8 text file, read a few MB at a time; lines split on
    ``\n`` with a trailing ``\r`` removed; a final newline adds no line. Bad UTF-8 names the line."""
    opener = gzip.open if gz else open
    first, rest = 1, b""
    try:
        with opener(path, "rb") as f:
            while True:
                block = f.read(8 << 20)
                data = rest + block
                cut = data.rfind(b"\n") + 1 if block else len(data)
                chunk, rest = data[:cut], data[cut:]
                if chunk:
                    try:
                        text = chunk.decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise DataError(f"{path}: line {first + line_of(chunk, e.start) - 1}: invalid UTF-8 "
                                        f"({e.reason})") from None
                    lines = text.split("\n")
                    if lines[-1] == "":
                        lines.pop()
                    if "\r" in text:
                        lines = [ln.removesuffix("\r") for ln in lines]
                    yield first, lines
                    first += len(lines)
                if not block:
                    return
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def _txt_tables(path: Path, gz: bool) -> Iterator[pa.Table]:
    for first, lines in text_blocks(path, gz):
        for start in range(0, len(lines), BATCH_ROWS):
            part = lines[start : start + BATCH_ROWS]
            ids = np.arange(first + start, first + start + len(part))
            yield make_table(ids, np.zeros(len(part), np.int64), part).append_column(
                "line", pa.array(ids, pa.int64())).replace_schema_metadata({"ids": "running"})


def _records(path: Path, fmt: str, gz: bool) -> Iterator[tuple[int, str]]:
    """(line number, line) of a jsonl or tsv file."""
    for first, lines in text_blocks(path, gz):
        yield from enumerate(lines, start=first)


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


def _record_tables(path: Path, fmt: str, gz: bool, text_field: str) -> Iterator[pa.Table]:
    """Source-schema tables (+ ``line``) of a jsonl or tsv file, parsed record by record."""
    records = _records(path, fmt, gz)
    header: list[str] | None = None
    if fmt == "tsv":
        first = next(records, None)
        header = first[1].split("\t") if first else []
        if text_field not in header:
            raise DataError(f"{path}: line 1: header has no {text_field!r} column (columns: {header})")
    has_ids: bool | None = None
    cols: tuple[list[int], list[int], list[str], list[int]] = ([], [], [], [])
    for n, line in records:
        if not (line.strip() if fmt == "jsonl" else line):
            continue
        rec = _parse(path, n, line, header)
        where = f"{path}: line {n}"
        if not isinstance(rec, dict) or text_field not in rec:
            raise DataError(f"{where}: no {text_field!r} field")
        text = rec[text_field]
        if not isinstance(text, str | None):
            raise DataError(f"{where}: {text_field!r} is not a string: {text!r}")
        if has_ids is None:
            has_ids = "verse_id" in rec
        elif has_ids != ("verse_id" in rec):
            raise DataError(f"{where}: verse_id must be given in every record or in none")
        cols[0].append(_int_value(rec["verse_id"], where, "verse_id", 2**63 - 1) if has_ids else n - (fmt == "tsv"))
        cols[1].append(_int_value(rec["book"], where, "book", 66) if rec.get("book") not in (None, "") else 0)
        cols[2].append(text or "")
        cols[3].append(n)
        if len(cols[3]) >= BATCH_ROWS:
            yield _record_table(cols, has_ids)
            cols = ([], [], [], [])
    if cols[3]:
        yield _record_table(cols, has_ids)


def _record_table(cols: tuple[list[int], list[int], list[str], list[int]], has_ids: bool | None) -> pa.Table:
    table = make_table(cols[0], cols[1], cols[2]).append_column("line", pa.array(cols[3], pa.int64()))
    return table.replace_schema_metadata({"ids": "file" if has_ids else "running"})


def iter_text_file(path: str | Path, text_field: str = "text", fmt: str | None = None) -> Iterator[pa.Table]:
    """Stream one local text file as tables in the source schema plus ``line`` (the line or row number),
    about :data:`BATCH_ROWS` records each, never reading the whole file into memory.

    Formats (by suffix, optionally ``.gz``, or ``fmt``): ``txt`` (one record per line), ``tsv`` (header
    line with ``text_field`` and optional ``verse_id``, ``book``; fields split on tabs, no quoting),
    ``jsonl`` (one object per line), ``parquet`` and ``arrow`` (Arrow IPC, e.g. Hugging Face ``datasets``
    shards; same columns). Without ``verse_id`` the id is the line number (record number for tsv/parquet);
    ``verse_id`` must be in every record or in none. Each table's schema metadata ``ids`` says ``file``
    (ids from the file) or ``running`` (numbered here). Malformed input raises DataError naming the file and
    line (row for parquet/arrow).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    fmt, gz = _file_format(path, fmt)
    if fmt in ("parquet", "arrow"):
        yield from _columnar_tables(path, fmt, text_field)
    elif fmt == "txt":
        yield from _txt_tables(path, gz)
    else:
        yield from _record_tables(path, fmt, gz, text_field)
