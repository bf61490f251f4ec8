"""Folder ingests leave test code out by default (counted as 'test_code'); `keep_tests` keeps it."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from core.cli.main import app
from core.ingest import ingest_sources
from core.ingest.filters import why_test_code
from core.ingest.stdlib import plan_stdlib
from core.ingest.upload import write_upload
from core.store import open_store

runner = CliRunner()


def _py(name: str) -> str:
    return f"def {name}(values):\n    \"\"\"Sum of the squares, for {name}.\"\"\"\n    return sum(v * v for v in values)\n"


def _js(name: str) -> str:
    return f"function {name}(items) {{\n  return items.filter((x) => x > 0).map((x) => x * 2);\n}}\n"


# path -> the function it holds; True when it is test code
PROJECT = {
    "src/app.py": ("app_function", False),
    "src/contest.py": ("contest_scores", False),           # 'test' inside a word: not a test file
    "src/latest/attest_utils.py": ("attest_utils", False),
    "web/cache.ts": ("cacheKeys", False),
    "tests/test_app.py": ("test_app_function", True),      # test folder and test name
    "tests/helpers.py": ("helper_in_tests", True),         # test folder only
    "Testing/fixtures.py": ("fixture_in_testing", True),   # folder names in any case
    "test_x.py": ("top_level_test", True),                 # name only
    "src/app_test.py": ("app_suffix_test", True),
    "conftest.py": ("conftest_fixture", True),
    "web/foo.spec.ts": ("specFoo", True),
    "web/Button.test.jsx": ("buttonTest", True),
    "web/__tests__/widget.js": ("widgetInTests", True),
    "web/specs/model.js": ("modelSpec", True),
}


def _write_project(root: Path) -> Path:
    for rel, (func, _) in PROJECT.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_js(func) if rel.endswith((".ts", ".js", ".jsx")) else _py(func))
    go = root / "cmd" / "main_test.go"
    go.parent.mkdir(parents=True)
    go.write_text("package main\n\nimport \"testing\"\n\nfunc TestMainRuns(t *testing.T) {\n"
                  "\tif run() != 0 {\n\t\tt.Fatal(\"run failed with a nonzero code\")\n\t}\n}\n")
    java = root / "java" / "CartTest.java"
    java.parent.mkdir(parents=True)
    java.write_text("class CartTest {\n    int totalOfCart(int[] prices) {\n        int t = 0;\n"
                    "        for (int p : prices) { t += p; }\n        return t;\n    }\n}\n")
    return root


KEPT = {f for f, test in PROJECT.values() if not test}
TESTS = {f for f, test in PROJECT.values() if test} | {"TestMainRuns", "CartTest.totalOfCart"}
TEST_FILES = {rel for rel, (_, test) in PROJECT.items() if test} | {"cmd/main_test.go", "java/CartTest.java"}


def _funcs(store) -> set[str]:
    return {r[0] for r in store.execute("SELECT func_name FROM snippets WHERE kind = 'function'").fetchall()}


@pytest.mark.parametrize("rel", ["tests/a.py", "a/test/b.go", "TESTS/x.rb", "pkg/testing/util.py",
                                 "ui/__tests__/a.tsx", "spec/a_spec.rb", "Specs/b.js", "test_a.py", "a/b_test.py",
                                 "x_test.go", "a.test.js", "a.test.tsx", "a.spec.ts", "a.spec.jsx", "FooTest.java",
                                 "FooTests.java", "conftest.py"])
def test_test_paths(rel):
    assert why_test_code(rel)


@pytest.mark.parametrize("rel", ["src/a.py", "contest.py", "latest/x.py", "Latest.java", "attest_x.py",
                                 "testament.py", "a_test.js", "test.py", "a.test.rb", "specimen/a.js"])
def test_not_test_paths(rel):
    assert why_test_code(rel) is None


def test_default_skips_test_code_counted(store, tmp_path):
    root = _write_project(tmp_path / "proj")
    r = ingest_sources(store, [str(root)])
    assert _funcs(store) == KEPT
    assert r.filtered_by_reason["test_code"] == len(TEST_FILES) == 12
    rows = store.execute("SELECT location, kind, detail FROM ingest_errors WHERE reason = 'test_code'").fetchall()
    assert {r[0] for r in rows} == TEST_FILES and {r[1] for r in rows} == {"filtered"}
    detail = dict((r[0], r[2]) for r in rows)
    assert "'tests'" in detail["tests/helpers.py"] and "test_x.py" in detail["test_x.py"]
    params = json.loads(store.scalar("SELECT params FROM ingests"))
    assert params["keep_tests"] is False


def test_keep_tests_keeps_them(store, tmp_path):
    root = _write_project(tmp_path / "proj")
    r = ingest_sources(store, [str(root)], keep_tests=True)
    assert _funcs(store) == KEPT | TESTS
    assert "test_code" not in r.filtered_by_reason
    assert json.loads(store.scalar("SELECT params FROM ingests"))["keep_tests"] is True


def test_a_folder_named_tests_given_directly_is_read(store, tmp_path):
    root = tmp_path / "tests"
    (root / "unit").mkdir(parents=True)
    (root / "helpers.py").write_text(_py("shared_helper"))
    (root / "unit" / "checks.py").write_text(_py("unit_check"))
    (root / "test_b.py").write_text(_py("test_b_case"))            # still a test file by its name
    r = ingest_sources(store, [str(root)])
    assert _funcs(store) == {"shared_helper", "unit_check"}
    assert r.filtered_by_reason["test_code"] == 1


def test_zip_upload_skips_tests(store, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("repo-main/lib/core.py", _py("library_core"))
        zf.writestr("repo-main/tests/test_core.py", _py("test_library_core"))
        zf.writestr("repo-main/web/app.spec.js", _js("appSpec"))
    folder = write_upload("repo.zip", buf.getvalue(), tmp_path / "uploads")
    r = ingest_sources(store, [str(folder)])
    assert _funcs(store) == {"library_core"} and r.filtered_by_reason["test_code"] == 2


def test_stdlib_demo_uses_the_same_rule():
    plan = plan_stdlib("stdlib")
    skipped = {p.location for p in plan.problems if p.reason == "test_code"}
    assert any(s.startswith("test/") for s in skipped) and any(s.startswith("idlelib/idle_test/") for s in skipped)
    assert not any(f.rel.startswith(("test/", "idlelib/idle_test/")) for f in plan.files)
    kept = plan_stdlib("stdlib", keep_tests=True)
    assert {f.rel for f in kept.files} >= skipped
    assert not any(p.reason == "test_code" for p in kept.problems)


def test_cli_keep_tests_flag(tmp_path):
    root = _write_project(tmp_path / "proj")
    db1, db2 = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    res = runner.invoke(app, ["--db", str(db1), "ingest", "--json", str(root)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["filtered_by_reason"]["test_code"] == 12
    res = runner.invoke(app, ["--db", str(db2), "ingest", "--json", "--keep-tests", str(root)])
    assert res.exit_code == 0, res.output
    assert "test_code" not in json.loads(res.stdout)["filtered_by_reason"]
    with open_store(db1) as s:
        assert _funcs(s) == KEPT
    with open_store(db2) as s:
        assert _funcs(s) == KEPT | TESTS
    res = runner.invoke(app, ["--db", str(tmp_path / "c.duckdb"), "ingest", str(root)])
    assert res.exit_code == 0 and "left out as test code: 12 files (--keep-tests" in res.output
