"""Whole-file corpora (The Stack / StarCoderData style: one source file per record, a
`content` column): OSS-Instruct seeds, plus functions via tree-sitter where supported.

Seed drawing lives in core.ingest.seeds (folders draw seeds the same way).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from core.ingest.filecheck import skip_reason
from core.ingest.model import Advance, IngestProblem, ReadOptions, Snippet, canonical_language, language_of_path
from core.ingest.records import iter_records
from core.ingest.seeds import seed_of
from core.ingest.sourcefile import functions_of

PATH_KEYS = ("path", "max_stars_repo_path", "max_forks_repo_path", "max_issues_repo_path",
             "file_path", "filepath", "filename")
REPO_KEYS = ("repo", "repo_name", "max_stars_repo_name", "max_forks_repo_name", "repository_name")
LANG_KEYS = ("lang", "language", "programming_language")
URL_KEYS = ("url",)


def looks_like_wholefile(record: dict) -> bool:
    return "content" in record


def _field(record: dict, keys: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(value, error) for the first present key; non-strings are an error."""
    for k in keys:
        v = record.get(k)
        if v is None:
            continue
        if not isinstance(v, str):
            return None, f"field {k!r} should be a string, got {type(v).__name__}"
        return v, None
    return None, None


def file_records(record: dict, location: str, source: str,
                 opts: ReadOptions) -> Iterator[Snippet | IngestProblem]:
    content = record.get("content")
    if content is None:
        hint = " (this looks like CodeSearchNet: use --format codesearchnet or auto)" \
            if any(k in record for k in ("code", "func_code_string", "original_string")) else ""
        yield IngestProblem(location, "missing_field", f"no 'content' field{hint}")
        return
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield IngestProblem(location, "invalid_utf8", f"'content' is not UTF-8 (byte offset {exc.start})")
            return
    if not isinstance(content, str):
        yield IngestProblem(location, "wrong_type", f"field 'content' should be a string, got {type(content).__name__}")
        return
    meta = {}
    for name, keys in (("path", PATH_KEYS), ("repo", REPO_KEYS), ("lang", LANG_KEYS), ("url", URL_KEYS)):
        meta[name], err = _field(record, keys)
        if err:
            yield IngestProblem(location, "wrong_type", err)
            return
    path = meta["path"]
    where = f"{location} ({path})" if path else location
    if "\x00" in content:
        yield IngestProblem(where, "binary_file", "'content' contains NUL bytes: binary, not source code", "filtered")
        return
    if len(content.encode("utf-8", "surrogatepass")) > opts.max_file_bytes:
        yield IngestProblem(where, "huge_file", f"{len(content):,} chars is over the {opts.max_file_bytes:,}-byte limit",
                            "filtered")
        return
    skip = skip_reason(path or "", content)
    if skip:
        yield IngestProblem(where, skip[0], skip[1], "filtered")
        return
    language = canonical_language(meta["lang"]) or language_of_path(path)
    if language is None:
        yield IngestProblem(where, "unknown_language", "no 'lang'/'language' field and no file extension to infer it from")
        return
    common = dict(language=language, source=source, source_kind="wholefile", repo=meta["repo"],
                  path=path, url=meta["url"])
    if opts.draw_seeds:
        yield seed_of(content, opts.seed, where, common)
    if opts.extract_functions:
        yield from functions_of(content.encode("utf-8", "surrogatepass"), language, path, where, common)


def read_wholefile_file(path: Path, label: str, source: str,
                        opts: ReadOptions) -> Iterator[Snippet | IngestProblem | Advance]:
    for item in iter_records(path, label, opts):
        if isinstance(item, (IngestProblem, Advance)):
            yield item
        else:
            location, record = item
            yield from file_records(record, location, source, opts)
