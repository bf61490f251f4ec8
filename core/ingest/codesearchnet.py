"""CodeSearchNet records, in both published schemas, to function snippets.

* original / CodeXGLUE: repo, path, func_name, original_string, language, code, code_tokens,
  docstring, docstring_tokens, sha, url, partition
* Hugging Face `code_search_net`: repository_name, func_path_in_repository, func_name,
  whole_func_string, language, func_code_string, func_code_tokens, func_documentation_string,
  func_documentation_tokens, split_name, func_code_url
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from core.ingest.model import (
    CODESEARCHNET_LANGUAGES,
    TREE_SITTER_LANGUAGES,
    Advance,
    IngestProblem,
    ReadOptions,
    Snippet,
    canonical_language,
    language_of_path,
)
from core.ingest.records import iter_records

# Each snippet field and the record keys that may hold it, in order of preference.
CODE_KEYS = ("code", "func_code_string", "original_string", "whole_func_string")
FIELDS = {
    "repo": ("repo", "repository_name"),
    "path": ("path", "func_path_in_repository"),
    "func_name": ("func_name",),
    "docstring": ("docstring", "func_documentation_string"),
    "url": ("url", "func_code_url"),
}
ACCEPTED_LANGUAGES = set(CODESEARCHNET_LANGUAGES) | set(TREE_SITTER_LANGUAGES)
_URL_LINES = re.compile(r"#L(\d+)(?:-L(\d+))?$")


def looks_like_codesearchnet(record: dict) -> bool:
    return any(k in record for k in CODE_KEYS) and "content" not in record


class BadRecord(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _text(record: dict, keys: tuple[str, ...]) -> str | None:
    """The first non-null of `keys`; a non-string value is a 'wrong_type' error."""
    for k in keys:
        v = record.get(k)
        if v is None:
            continue
        if not isinstance(v, str):
            raise BadRecord("wrong_type", f"field {k!r} should be a string, got {type(v).__name__}")
        return v
    return None


def _required_text(record: dict, keys: tuple[str, ...]) -> str:
    """Like _text, but a record without any of `keys` is a 'missing_field' error."""
    v = _text(record, keys)
    if v is None:
        raise BadRecord("missing_field", f"no {' / '.join(repr(k) for k in keys)} field")
    return v


def record_to_snippet(record: dict, source: str, location: str, file_language: str | None) -> Snippet:
    """One CodeSearchNet record -> Snippet; raises BadRecord with a countable reason."""
    code = _required_text(record, CODE_KEYS)
    if not code.strip():
        raise BadRecord("empty_code", "the code field is empty")
    fields = {name: _text(record, keys) for name, keys in FIELDS.items()}
    raw_lang = _text(record, ("language",))
    language = canonical_language(raw_lang) or file_language or language_of_path(fields["path"])
    if language is None:
        raise BadRecord("missing_field", "no 'language' field and none can be inferred from the path")
    if language not in ACCEPTED_LANGUAGES:
        raise BadRecord("unsupported_language", f"language {raw_lang or language!r} is not supported")
    start = end = None
    if fields["url"]:
        m = _URL_LINES.search(fields["url"])
        if m:
            start = int(m.group(1))
            end = int(m.group(2) or m.group(1))
    return Snippet(code=code, language=language, source=source, source_kind="codesearchnet",
                   kind="function", repo=fields["repo"], path=fields["path"],
                   func_name=fields["func_name"], docstring=fields["docstring"] or None,
                   url=fields["url"], start_line=start, end_line=end, location=location)


def _language_from_filename(path: Path) -> str | None:
    """CodeSearchNet files are named like python_train_0.jsonl.gz."""
    head = path.name.split("_", 1)[0].split(".", 1)[0].lower()
    return head if head in CODESEARCHNET_LANGUAGES else None


def read_codesearchnet_file(path: Path, label: str, source: str,
                            opts: ReadOptions) -> Iterator[Snippet | IngestProblem | Advance]:
    file_language = _language_from_filename(path)
    for item in iter_records(path, label, opts):
        if isinstance(item, (IngestProblem, Advance)):
            yield item
            continue
        location, record = item
        try:
            yield record_to_snippet(record, source, location, file_language)
        except BadRecord as bad:
            yield IngestProblem(location, bad.reason, bad.detail)
