"""Corpus ingestion: every source kind a user has, into `snippets`, with counted rejects.

Readers (one module per source kind) yield the same records:
  codesearchnet.py  CodeSearchNet JSONL / JSONL.gz / Parquet, original and Hugging Face schemas
  wholefile.py      whole-file corpora (The Stack style `content`): OSS-Instruct seeds + functions
  directory.py      local folders and git checkouts (tree-sitter, .gitignore, vendored/generated skips)
  stdlib.py         the running interpreter's standard library (the built-in demo corpus)
Shared pieces: records.py (robust JSONL/Parquet reading), sourcefile.py + treesitter.py
(functions of one file), filecheck.py (binary/generated/minified), filters.py (length window,
word blacklist), run.py (orchestration, dedup, bulk writes), background.py (the app's ingest
as a core.background task).
"""
from core.ingest.filters import DEFAULT_BLACKLIST
from core.ingest.run import INGEST_FORMATS, IngestResult, ingest_sources

__all__ = ["DEFAULT_BLACKLIST", "INGEST_FORMATS", "IngestResult", "ingest_sources"]
