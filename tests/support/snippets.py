"""Snippet rows for tests: numbered made-up functions, or real ones from the standard library."""
from __future__ import annotations

import ast
import hashlib
import sysconfig
from pathlib import Path

import pandas as pd

FUNCS = ["<=", "+", "==", ">"]


def add_snippets(store, n: int, kind: str = "function", language: str = "python") -> list[str]:
    ids = []
    for i in range(n):
        op = FUNCS[i % len(FUNCS)]
        code = (f"def func_{kind}_{i}(x, y):\n    \"\"\"Combine x and y the way number {i} needs.\"\"\"\n"
                f"    if x {op} y:\n        return x + y * {i}\n    return x - {i}\n")
        sid = f"{kind[0]}{i:05d}"
        store.execute("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars, func_name) "
                      "VALUES (?, ?, 'test', 'stdlib', ?, ?, ?, ?)", [sid, kind, language, code, len(code), f"func_{i}"])
        ids.append(sid)
    return ids


def stdlib_snippets(limit: int, modules=("textwrap.py", "json/decoder.py", "shlex.py", "fnmatch.py",
                                        "calendar.py", "heapq.py", "bisect.py", "colorsys.py", "ipaddress.py",
                                        "statistics.py", "difflib.py", "csv.py", "base64.py", "pprint.py")) -> pd.DataFrame:
    """Real functions of the running interpreter's standard library, as `snippets` rows."""
    root = Path(sysconfig.get_paths()["stdlib"])
    rows, seen = [], set()
    for mod in modules:
        path = root / mod
        src = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(src)):
            if not isinstance(node, ast.FunctionDef):
                continue
            code = ast.get_source_segment(src, node)
            if not code or not 50 <= len(code) <= 1500:
                continue
            sid = hashlib.sha256(code.encode()).hexdigest()[:32]
            if sid in seen:
                continue
            seen.add(sid)
            rows.append({"id": sid, "kind": "function", "source": "stdlib", "source_kind": "stdlib",
                         "language": "python", "code": code, "n_chars": len(code), "func_name": node.name,
                         "docstring": ast.get_docstring(node), "path": mod,
                         "start_line": node.lineno, "end_line": node.end_lineno})
            if len(rows) >= limit:
                return pd.DataFrame(rows)
    return pd.DataFrame(rows)
