"""Whole-file corpora (The Stack / StarCoderData style: one source file per record, a
`content` column): OSS-Instruct seeds, plus functions via tree-sitter where supported.

Seed drawing (Magicoder): one seed per file, 1-15 consecutive lines chosen at random.
The RNG seed is derived from the run seed and the file's content, stored in
`snippets.seed_rng`, so `draw_seed(lines, seed_rng)` reproduces the seed exactly.
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Iterator

from core.ingest.filecheck import skip_reason
from core.ingest.model import (Advance, Problem, ReadOptions, Snippet, canonical_language,
                               language_of_path)
from core.ingest.records import iter_records
from core.ingest.sourcefile import functions_of

PATH_KEYS = ("path", "max_stars_repo_path", "max_forks_repo_path", "max_issues_repo_path",
             "file_path", "filepath", "filename")
REPO_KEYS = ("repo", "repo_name", "max_stars_repo_name", "max_forks_repo_name", "repository_name")
LANG_KEYS = ("lang", "language", "programming_language")
URL_KEYS = ("url",)
SEED_MIN_LINES, SEED_MAX_LINES = 1, 15


def looks_like_wholefile(record: dict) -> bool:
    return "content" in record


def seed_rng_for(run_seed: int, content: str) -> int:
    """Per-file RNG seed: stable for the same file and run seed, whatever the file order."""
    digest = hashlib.sha256(f"{run_seed}|{content}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:6], "big")


def draw_seed(lines: list[str], seed_rng: int) -> tuple[int, int]:
    """(start, end) line indexes (0-based, end exclusive) of the seed drawn with `seed_rng`."""
    rng = random.Random(seed_rng)
    n = rng.randint(SEED_MIN_LINES, SEED_MAX_LINES)
    n = min(n, len(lines))
    start = rng.randint(0, len(lines) - n)
    return start, start + n


def seed_of(content: str, run_seed: int, where: str, common: dict) -> Snippet | Problem:
    """The file's OSS-Instruct seed: 1-15 consecutive lines drawn reproducibly (seed_rng stored)."""
    lines = content.split("\n")
    rng_seed = seed_rng_for(run_seed, content)
    start, end = draw_seed(lines, rng_seed)
    seed_text = "\n".join(lines[start:end])
    if not seed_text.strip():
        return Problem(f"{where}:{start + 1}", "blank_seed", f"the drawn lines {start + 1}-{end} are blank",
                       "filtered")
    return Snippet(code=seed_text, kind="seed", start_line=start + 1, end_line=end,
                   seed_rng=rng_seed, location=f"{where}:{start + 1}", **common)


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


def record_items(record: dict, location: str, source: str,
                 opts: ReadOptions) -> Iterator[Snippet | Problem]:
    content = record.get("content")
    if content is None:
        hint = " (this looks like CodeSearchNet: use --format codesearchnet or auto)" \
            if any(k in record for k in ("code", "func_code_string", "original_string")) else ""
        yield Problem(location, "missing_field", f"no 'content' field{hint}")
        return
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Problem(location, "invalid_utf8", f"'content' is not UTF-8 (byte offset {exc.start})")
            return
    if not isinstance(content, str):
        yield Problem(location, "wrong_type", f"field 'content' should be a string, got {type(content).__name__}")
        return
    meta = {}
    for name, keys in (("path", PATH_KEYS), ("repo", REPO_KEYS), ("lang", LANG_KEYS), ("url", URL_KEYS)):
        meta[name], err = _field(record, keys)
        if err:
            yield Problem(location, "wrong_type", err)
            return
    path = meta["path"]
    where = f"{location} ({path})" if path else location
    if "\x00" in content:
        yield Problem(where, "binary_file", "'content' contains NUL bytes: binary, not source code", "filtered")
        return
    if len(content.encode("utf-8", "surrogatepass")) > opts.max_file_bytes:
        yield Problem(where, "huge_file", f"{len(content):,} chars is over the {opts.max_file_bytes:,}-byte limit",
                      "filtered")
        return
    skip = skip_reason(path or "", content)
    if skip:
        yield Problem(where, skip[0], skip[1], "filtered")
        return
    language = canonical_language(meta["lang"]) or language_of_path(path)
    if language is None:
        yield Problem(where, "unknown_language", "no 'lang'/'language' field and no file extension to infer it from")
        return
    common = dict(language=language, source=source, source_kind="wholefile", repo=meta["repo"],
                  path=path, url=meta["url"])
    if opts.draw_seeds:
        yield seed_of(content, opts.seed, where, common)
    if opts.extract_functions:
        yield from functions_of(content.encode("utf-8", "surrogatepass"), language, path, where, common)


def read_wholefile_file(path: Path, label: str, source: str,
                        opts: ReadOptions) -> Iterator[Snippet | Problem | Advance]:
    for item in iter_records(path, label, opts):
        if isinstance(item, (Problem, Advance)):
            yield item
        else:
            location, record = item
            yield from record_items(record, location, source, opts)
