"""Unit checks of the pieces: tree-sitter extraction, normalization and ids, gitignore, records."""
from __future__ import annotations

import gzip

import pytest

from core.ingest.directory import plan_directory
from core.ingest.model import ReadOptions, normalize_code, snippet_id
from core.ingest.records import iter_records
from core.ingest.treesitter import extract_functions


def _names(src: str, lang: str, path: str | None = None) -> dict[str, object]:
    return {f.name: f for f in extract_functions(src.encode(), lang, path).functions}


def test_python_docstring_comment_and_nested_functions_stay_inside():
    fns = _names('@cache\ndef outer(x):\n    """Doc."""\n    def inner(y):\n        return y\n    return inner(x)\n', "python")
    assert list(fns) == ["outer"] and fns["outer"].docstring == "Doc." and fns["outer"].start_line == 1


def test_javascript_exported_arrow_function_and_tsx():
    js = "// Adds one.\nexport const inc = (n) => n + 1;\nexport default function main() { return inc(1); }\n"
    fns = _names(js, "javascript")
    assert fns["inc"].docstring == "Adds one." and fns["inc"].code.startswith("export const inc")
    assert "main" in fns
    tsx = "export function Button({ label }: { label: string }) {\n  return <button>{label}</button>;\n}\n"
    assert "Button" in _names(tsx, "typescript", "ui/Button.tsx")


def test_cpp_qualified_method_and_java_interface_without_body():
    cpp = "// Area.\ndouble Shape::area() const {\n  return w * h;\n}\n"
    assert "Shape::area" in _names(cpp, "cpp")
    java = "interface Greeter {\n  String greet(String name);\n  default String hi() { return greet(\"hi\"); }\n}\n"
    assert list(_names(java, "java")) == ["Greeter.hi"]


def test_syntax_error_reported_with_line_and_intact_functions_kept():
    ex = extract_functions(b"def ok(a):\n    return a\n\nclass X(:\n    pass\n\ndef ok2(b):\n    return b\n", "python")
    assert ex.error_line == 4
    assert [f.name for f in ex.functions] == ["ok", "ok2"]


def test_deep_nesting_does_not_hit_the_recursion_limit():
    src = "x = " + "[" * 3000 + "]" * 3000 + "\ndef after(a):\n    return a\n"
    assert [f.name for f in extract_functions(src.encode(), "python").functions] == ["after"]


def test_normalize_reindents_stripped_first_line_and_ids_ignore_whitespace():
    method = 'def area(self):\n        """Area."""\n        return self.w * self.h'
    norm = normalize_code(method, "python")
    assert norm == 'def area(self):\n    """Area."""\n    return self.w * self.h'
    compile(norm, "<m>", "exec")
    decorated = "@property\n    def area(self):\n        return self.w * self.h"
    assert normalize_code(decorated, "python") == "@property\ndef area(self):\n    return self.w * self.h"
    java = "public int size() {\n        return items.size();\n    }"
    assert normalize_code(java, "java") == "public int size() {\n    return items.size();\n}"
    assert snippet_id("def f():\r\n    return 1   \n") == snippet_id(normalize_code("  def f():\n      return 1"))
    assert snippet_id("def f():\n    return 1") != snippet_id("def f():\n    return 2")
    assert len(snippet_id("x")) == 32


def test_nested_gitignore_and_negation(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / ".gitignore").write_text("*.py\n!keep.py\n")
    (tmp_path / "a" / ".gitignore").write_text("!a_keep.py\n")
    for rel in ("x.py", "keep.py", "a/a_keep.py", "a/a_drop.py", "a/main.go"):
        (tmp_path / rel).write_text("package main\n")
    plan = plan_directory(tmp_path)
    assert sorted(f.rel for f in plan.files) == ["a/a_keep.py", "a/main.go", "keep.py"]
    assert sorted(p.location for p in plan.problems if p.reason == "gitignored") == ["a/a_drop.py", "x.py"]


@pytest.mark.parametrize("gz", [False, True])
def test_records_crlf_bom_blank_lines(tmp_path, gz):
    data = b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"a": 2}\r\n'
    f = tmp_path / ("r.jsonl.gz" if gz else "r.jsonl")
    f.write_bytes(gzip.compress(data) if gz else data)
    recs = [it for it in iter_records(f, "r", ReadOptions()) if isinstance(it, tuple)]
    assert recs == [("r:1", {"a": 1}), ("r:3", {"a": 2})]


def test_gzip_that_is_not_gzip_is_counted(tmp_path):
    f = tmp_path / "fake.jsonl.gz"
    f.write_bytes(b"\x1f\x8b" + b"garbage that is not deflate" * 10)
    problems = [it for it in iter_records(f, "fake.jsonl.gz", ReadOptions()) if hasattr(it, "reason")]
    assert problems and problems[0].reason in ("corrupt_gzip", "truncated_gzip")
