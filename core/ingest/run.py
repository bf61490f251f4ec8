"""Orchestration: sources -> readers -> filters -> dedup -> `snippets` / `ingest_errors`.

Every source is resolved to one reader (see `_open_source`); readers yield Snippet,
IngestProblem and Advance items; `_Writer` normalizes, filters, dedups (within the run and
against the database) and bulk-inserts in batches, so an interrupted run keeps what it had.
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import duckdb
import pandas as pd

from core.errors import ShoalError
from core.ingest.codesearchnet import looks_like_codesearchnet, read_codesearchnet_file
from core.ingest.directory import open_directory, read_single_source_file
from core.ingest.filters import DEFAULT_BLACKLIST, Filter, build_filters
from core.ingest.model import EXTENSIONS, Advance, IngestProblem, ReadOptions, Snippet, normalize_code, snippet_id
from core.ingest.records import file_size, is_data_file, iter_records
from core.ingest.roots import SYMLINK_OUTSIDE, link_outside
from core.ingest.stdlib import is_stdlib_source, open_stdlib
from core.ingest.wholefile import looks_like_wholefile, read_wholefile_file
from core.progress import Cancelled, ProgressFn, check_cancel, report
from core.store import Store, register

INGEST_FORMATS = ("auto", "codesearchnet", "jsonl", "parquet", "dir", "stdlib")
Item = Snippet | IngestProblem | Advance
BATCH = 2000
_PEEK_RECORDS = 20          # auto format: records looked at to tell CodeSearchNet from whole files
_DETAIL_MAX = 500


@dataclass
class IngestResult:
    ingest_id: int
    sources: list[str]
    format: str
    ingested: int = 0
    duplicates: int = 0         # records dropped as exact copies: within this run plus already_present
    already_present: int = 0    # of those, copies of a snippet the corpus had before this run (a re-ingest)
    filtered: int = 0
    errors: list[dict] = field(default_factory=list)     # {source, location, reason, detail}
    read: int = 0                                          # records/functions read before filtering
    filtered_by_reason: Counter = field(default_factory=Counter)
    languages: Counter = field(default_factory=Counter)   # ingested per language
    seconds: float = 0.0
    status: str = "running"

    @property
    def errors_by_reason(self) -> Counter:
        return Counter(e["reason"] for e in self.errors)

    @property
    def nothing_read(self) -> bool:
        """True when not a single record or function could be read from any source."""
        return self.read == 0

    def to_json(self) -> dict:
        return {
            "ingest_id": self.ingest_id, "status": self.status, "sources": self.sources, "format": self.format,
            "ingested": self.ingested, "duplicates": self.duplicates, "already_present": self.already_present,
            "filtered": self.filtered,
            "errors": self.errors, "n_errors": len(self.errors), "read": self.read,
            "filtered_by_reason": dict(self.filtered_by_reason.most_common()),
            "errors_by_reason": dict(self.errors_by_reason.most_common()),
            "languages": dict(self.languages.most_common()), "seconds": round(self.seconds, 3),
        }


# --------------------------------------------------------------------------- sources

@dataclass
class _Job:
    source: str
    total: int                      # bytes, for progress
    items: Iterator[Item]


def _with_offset(items: Iterable[Item], base: int) -> Iterator[Item]:
    for it in items:
        yield Advance(base + it.nbytes, it.note) if isinstance(it, Advance) else it


def _data_schema(path: Path, label: str, fmt: str, opts: ReadOptions) -> str | IngestProblem:
    """'codesearchnet' or 'wholefile' for a data file; auto mode peeks at the first record."""
    if fmt == "codesearchnet":
        return "codesearchnet"
    if fmt in ("jsonl", "parquet"):
        return "wholefile"
    first, seen = None, 0
    for item in iter_records(path, label, opts):
        if isinstance(item, tuple):
            record = item[1]
            if looks_like_wholefile(record):
                return "wholefile"
            if looks_like_codesearchnet(record):
                return "codesearchnet"
            first = first or item
            seen += 1
            if seen >= _PEEK_RECORDS:
                break
    if first is None:
        return "codesearchnet"  # no good record at all: reading it reports every problem
    keys = ", ".join(sorted(first[1])[:12])
    return IngestProblem(label, "unknown_schema",
                         f"the first {seen} records have neither 'content' (whole files) nor a CodeSearchNet "
                         f"code field; keys: {keys}")


def _data_file_items(path: Path, label: str, source: str, fmt: str, opts: ReadOptions) -> Iterator[Item]:
    schema = _data_schema(path, label, fmt, opts)
    if isinstance(schema, IngestProblem):
        yield schema
        yield Advance(file_size(path), label)
        return
    reader = read_codesearchnet_file if schema == "codesearchnet" else read_wholefile_file
    yield from reader(path, label, source, opts)


def _data_folder(root: Path, source: str, fmt: str, opts: ReadOptions) -> _Job:
    found = sorted(p for p in root.rglob("*") if p.is_file() and is_data_file(p)
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    real = root.resolve()
    escaped = {p: t for p in found if (t := link_outside(p, real))}     # symlinks out of the folder: not read
    files = [p for p in found if p not in escaped]

    def items() -> Iterator[Item]:
        for p, target in escaped.items():
            yield IngestProblem(p.relative_to(root).as_posix(), SYMLINK_OUTSIDE,
                                f"a symlink to {target}, outside the folder: not read")
        if not files:
            yield IngestProblem(root.name, "no_data_files", "no .jsonl, .jsonl.gz or .parquet files in this folder")
        base = 0
        for p in files:
            yield from _with_offset(_data_file_items(p, p.relative_to(root).as_posix(), source, fmt, opts), base)
            base += file_size(p)
    return _Job(source, sum(file_size(p) for p in files), items())


def _looks_like_data_folder(root: Path) -> bool:
    """Data files and no source code: a folder of CodeSearchNet / whole-file shards."""
    has_data = False
    for p in root.rglob("*"):
        if p.is_file():
            if p.suffix.lower() in EXTENSIONS:
                return False
            has_data = has_data or is_data_file(p)
    return has_data


def _open_source(source: str, fmt: str, opts: ReadOptions) -> _Job:
    if is_stdlib_source(source):
        if fmt not in ("auto", "stdlib"):
            return _Job(source, 0, iter([IngestProblem(source, "wrong_format", f"'stdlib' cannot be read as {fmt}")]))
        total, items = open_stdlib(source, opts)
        return _Job(source, total, items)
    if fmt == "stdlib":
        return _Job(source, 0, iter([IngestProblem(source, "wrong_format",
                                                   "--format stdlib takes 'stdlib' or 'stdlib:mod1,mod2' as source")]))
    path = Path(source).expanduser()
    if not path.exists():
        return _Job(source, 0, iter([IngestProblem(source, "not_found", "no such file or folder")]))
    if path.is_dir():
        if fmt == "dir" or (fmt == "auto" and not _looks_like_data_folder(path)):
            total, items = open_directory(path, source, opts)
            return _Job(source, total, items)
        return _data_folder(path, source, fmt, opts)
    if fmt == "dir" or (fmt == "auto" and not is_data_file(path)):
        return _Job(source, file_size(path), read_single_source_file(path, source, opts))
    return _Job(source, file_size(path), _data_file_items(path, path.name, source, fmt, opts))


# --------------------------------------------------------------------------- writer

class _Writer:
    """Filters, dedups and writes in batches; counts everything into the result."""

    def __init__(self, store: Store, result: IngestResult, filters: list[Filter], sources: list[str]):
        self.store, self.result, self.filters = store, result, filters
        self.seen: set[str] = set()
        self.snippets: list[dict] = []
        self.problems: list[dict] = []
        # (source, location, reason) already recorded by an earlier ingest: not stored twice.
        rows = store.cursor().execute(
            "SELECT source, location, reason FROM ingest_errors WHERE list_contains(?, source)",
            [sources]).fetchall()
        self.known_problems = {tuple(r) for r in rows}

    def problem(self, p: IngestProblem, source: str) -> None:
        src = p.source or source
        if p.kind == "filtered":
            self.result.filtered += 1
            self.result.filtered_by_reason[p.reason] += 1
        else:
            self.result.errors.append({"source": src, "location": p.location, "reason": p.reason,
                                       "detail": p.detail})
        key = (src, p.location, p.reason)
        if key in self.known_problems:
            return
        self.known_problems.add(key)
        self.problems.append({"ingest_id": self.result.ingest_id, "source": src, "location": p.location,
                              "kind": p.kind, "reason": p.reason, "detail": (p.detail or "")[:_DETAIL_MAX]})
        if len(self.problems) >= BATCH:
            self.flush()

    def snippet(self, s: Snippet) -> None:
        self.result.read += 1
        code = normalize_code(s.code, s.language)
        if not code:
            self.problem(IngestProblem(s.location, "empty_code", "no code after normalization", "filtered"), s.source)
            return
        for f in self.filters:
            drop = f(code, s)
            if drop is not None:
                label = f"{s.func_name}: {drop.detail}" if s.func_name else drop.detail
                self.problem(IngestProblem(s.location, drop.reason, label, "filtered"), s.source)
                return
        sid = snippet_id(code)
        if sid in self.seen:
            self.result.duplicates += 1
            return
        self.seen.add(sid)
        self.snippets.append({
            "id": sid, "kind": s.kind, "source": s.source, "source_kind": s.source_kind, "repo": s.repo,
            "path": s.path, "func_name": s.func_name, "language": s.language, "code": code,
            "docstring": s.docstring, "url": s.url, "start_line": s.start_line, "end_line": s.end_line,
            "n_chars": len(code), "seed_rng": s.seed_rng, "ingest_id": self.result.ingest_id,
        })
        if len(self.snippets) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.snippets:
            frame = pd.DataFrame(self.snippets).astype({"start_line": "Int64", "end_line": "Int64",
                                                        "seed_rng": "Int64"})
            self.snippets = []
            cur = self.store.cursor()
            register(cur, "_shoal_new_ids", frame[["id"]])
            try:
                existing = {r[0] for r in cur.execute(
                    "SELECT s.id FROM snippets s JOIN _shoal_new_ids n ON s.id = n.id").fetchall()}
            finally:
                cur.unregister("_shoal_new_ids")
            if existing:
                frame = frame[~frame["id"].isin(existing)]
                self.result.duplicates += len(existing)
                self.result.already_present += len(existing)
            n = self.store.insert_df("snippets", frame)
            self.result.ingested += n
            self.result.languages.update(frame["language"].tolist())
        if self.problems:
            self.store.insert_df("ingest_errors", pd.DataFrame(self.problems))
            self.problems = []
        self.store.execute(
            "UPDATE ingests SET ingested = ?, duplicates = ?, already_present = ?, filtered = ?, errors = ? "
            "WHERE id = ?",
            [self.result.ingested, self.result.duplicates, self.result.already_present, self.result.filtered,
             len(self.result.errors), self.result.ingest_id])


# --------------------------------------------------------------------------- entry point

def ingest_sources(store: Store, sources: list[str], fmt: str = "auto", min_chars: int = 50,
                   max_chars: int = 800, blacklist: Iterable[str] | None = None, seed: int = 0,
                   progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                   options: ReadOptions | None = None, keep_tests: bool = False) -> IngestResult:
    """Ingest every source into `snippets` (see the module docstring of core.ingest).

    Sources: files/folders (CodeSearchNet or whole-file JSONL/JSONL.gz/Parquet, source trees,
    git checkouts, single source files) or 'stdlib' / 'stdlib:mod1,mod2'. In source trees test
    code is skipped (counted as 'test_code') unless `keep_tests`. Bad input never
    raises: it becomes a counted `ingest_errors` row. Raises ShoalError only for bad arguments,
    Cancelled if `cancel` is set (what was read so far is kept).
    """
    sources = [str(s) for s in sources if str(s).strip()]
    if not sources:
        raise ShoalError("Give at least one source: a file, a folder, or 'stdlib'.")
    if fmt not in INGEST_FORMATS:
        raise ShoalError(f"Unknown format {fmt!r}: choose one of {', '.join(INGEST_FORMATS)}.")
    try:
        filters = build_filters(min_chars, max_chars, blacklist)
    except ValueError as exc:
        raise ShoalError(f"Invalid length window: {exc} (need 0 <= --min-chars <= --max-chars).") from None
    opts = options or ReadOptions()
    opts.seed = seed
    opts.keep_tests = opts.keep_tests or keep_tests
    words = list(DEFAULT_BLACKLIST if blacklist is None else blacklist)
    params = {"min_chars": min_chars, "max_chars": max_chars, "blacklist": words, "seed": seed,
              "max_file_bytes": opts.max_file_bytes, "max_line_bytes": opts.max_line_bytes,
              "keep_tests": opts.keep_tests}
    ingest_id = int(store.scalar(
        "INSERT INTO ingests(sources, format, params) VALUES (?, ?, ?) RETURNING id",
        [json.dumps(sources), fmt, json.dumps(params)]))
    result = IngestResult(ingest_id=ingest_id, sources=sources, format=fmt)
    started = time.perf_counter()
    writer = _Writer(store, result, filters, sources)
    try:
        jobs = [_open_source(src, fmt, opts) for src in sources]
        total = sum(j.total for j in jobs) or None
        base = 0
        report(progress, 0, total, "starting")
        for job in jobs:
            n = 0
            for item in job.items:
                if isinstance(item, Snippet):
                    writer.snippet(item)
                elif isinstance(item, IngestProblem):
                    writer.problem(item, job.source)
                else:
                    check_cancel(cancel)
                    report(progress, base + item.nbytes, total,
                           f"{result.ingested + len(writer.snippets):,} kept · {item.note}")
                n += 1
                if n % 256 == 0:
                    check_cancel(cancel)
            base += job.total
        result.status = "done"
    except (Cancelled, KeyboardInterrupt):
        result.status = "cancelled"
        raise
    except BaseException:
        result.status = "failed"
        raise
    finally:
        try:
            writer.flush()
        finally:
            result.seconds = time.perf_counter() - started
            store.execute(
                "UPDATE ingests SET finished_at = current_timestamp, status = ?, ingested = ?, duplicates = ?, "
                "already_present = ?, filtered = ?, errors = ? WHERE id = ?",
                [result.status, result.ingested, result.duplicates, result.already_present, result.filtered,
                 len(result.errors), ingest_id])
            try:
                store.checkpoint()
            except duckdb.Error:  # another thread mid-transaction: DuckDB checkpoints on its own later
                pass
    report(progress, total or 0, total, f"done: {result.ingested:,} ingested")
    return result
