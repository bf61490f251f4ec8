"""The Generate page stays a short script: its panels live in ui/ modules with short functions."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "pages" / "3_Generate.py"
MODULES = [PAGE, *sorted((ROOT / "ui" / "generate").glob("*.py"))]   # the page and its parts (ui/generate/)


def test_the_generate_page_is_a_short_script_of_panels():
    tree = ast.parse(PAGE.read_text())
    assert len(PAGE.read_text().splitlines()) <= 40
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert len(MODULES) >= 5


def test_no_function_of_the_generate_page_is_over_80_lines():
    long = [f"{p.relative_to(ROOT)}:{n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in MODULES for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert long == []
