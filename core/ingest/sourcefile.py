"""One source file -> function snippets (shared by folders, the stdlib and whole-file corpora)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from core.ingest.filecheck import decode_utf8, is_binary, skip_reason
from core.ingest.model import IngestProblem, ReadOptions, Snippet
from core.ingest.seeds import seed_of
from core.ingest.treesitter import GrammarMissing, extract_functions, grammar_for

UrlFn = Callable[[str, int, int], "str | None"]  # (relative path, start line, end line) -> url


def functions_of(data: bytes, language: str, path: str | None, where: str,
                 common: dict) -> Iterator[Snippet | IngestProblem]:
    """Function snippets of already-checked source bytes; a syntax error is one counted
    'parse_error' (functions outside the broken region are still yielded)."""
    if grammar_for(language, path) is None:
        return
    try:
        ex = extract_functions(data, language, path)
    except GrammarMissing as exc:
        yield IngestProblem(where, "grammar_missing", str(exc))
        return
    if ex.error_line is not None:
        yield IngestProblem(f"{where}:{ex.error_line}", "parse_error",
                            f"{language} syntax error near {ex.error_text!r}; "
                            f"{len(ex.functions)} intact functions kept")
    for fn in ex.functions:
        yield Snippet(code=fn.code, func_name=fn.name, docstring=fn.docstring, start_line=fn.start_line,
                      end_line=fn.end_line, location=f"{where}:{fn.start_line}", **common)


def read_source_file(path: Path, rel: str, language: str, source: str, source_kind: str,
                     opts: ReadOptions, repo: str | None = None,
                     url_fn: UrlFn | None = None) -> Iterator[Snippet | IngestProblem]:
    """Checks (size, binary, UTF-8, generated, minified, empty), then tree-sitter functions."""
    try:
        size = path.stat().st_size
        if size > opts.max_file_bytes:
            yield IngestProblem(rel, "huge_file", f"{size:,} bytes is over the {opts.max_file_bytes:,}-byte limit",
                                "filtered")
            return
        data = path.read_bytes()
    except OSError as exc:
        yield IngestProblem(rel, "unreadable", f"cannot read the file: {exc.strerror or exc}")
        return
    if is_binary(data):
        yield IngestProblem(rel, "binary_file", "the file contains NUL bytes", "filtered")
        return
    text, line, why = decode_utf8(data)
    if text is None:
        yield IngestProblem(f"{rel}:{line}", "invalid_utf8", why)
        return
    skip = skip_reason(path.name, text)
    if skip:
        yield IngestProblem(rel, skip[0], skip[1], "filtered")
        return
    common = dict(language=language, source=source, source_kind=source_kind, repo=repo, path=rel)
    if opts.file_seeds:
        seed = seed_of(text, opts.seed, rel, common)
        if isinstance(seed, Snippet) and url_fn is not None:
            seed.url = url_fn(rel, seed.start_line or 0, seed.end_line or 0)
        yield seed
    for item in functions_of(text.encode("utf-8"), language, rel, rel, common):
        if isinstance(item, Snippet) and url_fn is not None:
            item.url = url_fn(rel, item.start_line or 0, item.end_line or 0)
        yield item
