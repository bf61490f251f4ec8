"""Ingestion inputs: the committed sample corpora under tests/data/ingest, and CodeSearchNet records
and JSON lines made at run time."""
from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"
CSN_ORIGINAL = DATA / "codesearchnet" / "original"
CSN_HF = DATA / "codesearchnet" / "hf_code_search_net.jsonl"
STACK = DATA / "wholefile" / "stack_sample.jsonl"
MULTILANG = DATA / "multilang_repo"


GOOD_CSN = {"repo": "acme/tools", "path": "tools/text.py", "func_name": "shout", "language": "python",
            "code": "def shout(text):\n    \"\"\"Upper-case and add an exclamation mark.\"\"\"\n    return text.upper() + '!'",
            "docstring": "Upper-case and add an exclamation mark.",
            "url": "https://github.com/acme/tools/blob/0123abc/tools/text.py#L3-L5"}


def csn_record(i: int, **over) -> dict:
    """A valid original-schema record with unique code number `i`."""
    rec = dict(GOOD_CSN, func_name=f"shout_{i}",
               code=f"def shout_{i}(text):\n    \"\"\"Upper-case text number {i}.\"\"\"\n    return text.upper() + '{'!' * (i % 5 + 1)}'")
    rec.update(over)
    return rec


def jsonl(lines: list) -> bytes:
    return b"".join((l if isinstance(l, bytes) else json.dumps(l).encode()) + b"\n" for l in lines)
