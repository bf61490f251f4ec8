"""Records out of data files (JSONL, JSONL.gz, Parquet), robust to bad input.

`iter_records` yields `(location, dict)` for every good record, an `IngestProblem` for every bad
line (invalid UTF-8, malformed JSON, not an object, too long), an `IngestProblem` for a broken
file (binary, empty, truncated or corrupt gzip, unreadable Parquet) and `Advance` ticks.
Everything read before a failure is kept.
"""
from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path
from typing import Iterator

from core.ingest.filecheck import is_binary
from core.ingest.model import Advance, IngestProblem, ReadOptions

DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".json", ".json.gz", ".parquet", ".jsonl.gzip")
_TICK_RECORDS = 500


def is_data_file(path: Path) -> bool:
    return path.name.lower().endswith(DATA_SUFFIXES)


def _is_parquet(path: Path) -> bool:
    if path.name.lower().endswith(".parquet"):
        return True
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PAR1"
    except OSError:
        return False


Record = tuple[str, dict]


def iter_records(path: Path, label: str, opts: ReadOptions) -> Iterator[Record | IngestProblem | Advance]:
    """All records of one data file; `label` names the file in locations."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        yield IngestProblem(label, "unreadable", f"cannot read the file: {exc.strerror or exc}")
        return
    if size == 0:
        yield IngestProblem(label, "empty_file", "the file is empty")
        return
    if _is_parquet(path):
        yield from _iter_parquet(path, label, size)
    else:
        yield from _iter_jsonl(path, label, size, opts)


# --------------------------------------------------------------------------- JSONL

def _iter_jsonl(path: Path, label: str, size: int, opts: ReadOptions) -> Iterator[Record | IngestProblem | Advance]:
    try:
        raw = open(path, "rb")
    except OSError as exc:
        yield IngestProblem(label, "unreadable", f"cannot open the file: {exc.strerror or exc}")
        return
    with raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        try:
            head = stream.read(8192)
        except (EOFError, OSError, zlib.error):
            head = b""  # a short truncated/corrupt gzip: the line loop keeps what it can and reports where
        if is_binary(head):
            yield IngestProblem(label, "binary_file", "the file contains NUL bytes: binary, not JSON lines")
            return
        raw.seek(0)
        if gz:
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        yield from _jsonl_lines(stream, raw, label, size, opts)


def _jsonl_lines(stream, raw, label: str, size: int, opts: ReadOptions) -> Iterator[Record | IngestProblem | Advance]:
    lineno, good, bad, ticked = 0, 0, 0, 0
    limit = opts.max_line_bytes
    while True:
        try:
            line = stream.readline(limit + 1)
            if not line:
                break
            lineno += 1
            if len(line) > limit and not line.endswith(b"\n"):
                total = len(line)
                while True:  # skip the rest of this line without holding it in memory
                    chunk = stream.readline(1 << 20)
                    total += len(chunk)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                yield IngestProblem(f"{label}:{lineno}", "line_too_long",
                                    f"line of {total:,} bytes is over the {limit:,}-byte limit; skipped")
                bad += 1
                continue
        except EOFError as exc:
            yield IngestProblem(f"{label}:{lineno + 1}", "truncated_gzip",
                                f"the gzip stream ends early ({exc}); kept the {good} records before it")
            break
        except (OSError, zlib.error) as exc:
            yield IngestProblem(f"{label}:{lineno + 1}", "corrupt_gzip",
                                f"cannot decompress past this point ({exc}); kept the {good} records before it")
            break
        item = _parse_line(line, f"{label}:{lineno}")
        if isinstance(item, IngestProblem):
            bad += 1
            yield item
            if good == 0 and bad >= opts.max_errors_per_file:
                yield IngestProblem(label, "unreadable_file",
                                    f"gave up after {bad} bad lines and no good record: not JSON lines?")
                break
        elif item is not None:
            good += 1
            yield item
        if lineno - ticked >= _TICK_RECORDS:
            ticked = lineno
            yield Advance(raw.tell(), label)
    if lineno == 0 or (good == 0 and bad == 0):
        yield IngestProblem(label, "empty_file", "no records in the file")
    yield Advance(size, label)


def _parse_line(line: bytes, location: str) -> Record | IngestProblem | None:
    if not line.strip():
        return None
    try:
        text = line.decode("utf-8").lstrip("\ufeff")  # a BOM on the first line is not an error
    except UnicodeDecodeError as exc:
        return IngestProblem(location, "invalid_utf8", f"invalid UTF-8 byte 0x{line[exc.start]:02x} at column {exc.start + 1}")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return IngestProblem(location, "malformed_json", f"{exc.msg} at column {exc.colno}")
    except RecursionError:
        return IngestProblem(location, "malformed_json", "JSON nested too deeply")
    if not isinstance(obj, dict):
        return IngestProblem(location, "not_an_object", f"expected a JSON object, got {type(obj).__name__}")
    return location, obj


# --------------------------------------------------------------------------- Parquet

def _iter_parquet(path: Path, label: str, size: int) -> Iterator[Record | IngestProblem | Advance]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
        total = pf.metadata.num_rows
    except (pa.ArrowException, OSError, ValueError) as exc:
        yield IngestProblem(label, "unreadable_parquet", f"not a readable Parquet file: {exc}")
        return
    if total == 0:
        yield IngestProblem(label, "empty_file", "the Parquet file has no rows")
        return
    row = 0
    try:
        for batch in pf.iter_batches(batch_size=1000):
            for rec in batch.to_pylist():
                row += 1
                yield f"{label}#{row}", rec
            yield Advance(int(size * row / total), label)
    except (pa.ArrowException, OSError, ValueError) as exc:
        yield IngestProblem(f"{label}#{row + 1}", "unreadable_parquet",
                            f"cannot read past this row ({exc}); kept the {row} rows before it")
    yield Advance(size, label)


def file_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
