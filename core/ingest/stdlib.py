"""The built-in demo corpus: functions of the running interpreter's standard library.

Source strings: `stdlib` (all of it) or `stdlib:json,csv,email` (only those top-level
modules/packages; handy for fast tests). Test code is skipped as in any folder ingest
('test_code', plus IDLE's idle_test folder) unless kept; site-packages, bundled wheels and the
__phello__ toy package are left out. URLs point at the same file in the CPython repository.
"""
from __future__ import annotations

import dataclasses
import platform
import sysconfig
from pathlib import Path
from typing import Iterator

from core.ingest.directory import Plan, plan_directory, read_plan
from core.ingest.model import Advance, IngestProblem, ReadOptions, Snippet

_TEST_DIRS = ("idle_test",)                  # test folders of the stdlib beyond the general rule
_NOT_LIBRARY = frozenset({"__phello__", "_bundled"})   # a frozen-module toy package, pip's wheels


def is_stdlib_source(source: str) -> bool:
    return source == "stdlib" or source.startswith("stdlib:")


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _modules(source: str) -> set[str] | None:
    if ":" not in source:
        return None
    return {m.strip() for m in source.split(":", 1)[1].split(",") if m.strip()}


def plan_stdlib(source: str = "stdlib", keep_tests: bool = False) -> Plan:
    root = stdlib_root()
    wanted = _modules(source)

    def skip_dir(rel: str, name: str) -> str | None:
        if "/" not in rel and (name.startswith("config-") or (wanted is not None and rel not in wanted)):
            return "not_selected"  # build configuration folder, or a module not asked for
        if name in _NOT_LIBRARY:
            return "not_selected"
        return None

    plan = plan_directory(root, gitignore=False, extensions={".py": "python"}, skip_dir=skip_dir,
                          keep_tests=keep_tests, extra_test_dirs=_TEST_DIRS)
    # Unselected modules, site-packages and non-Python files are not interesting skips in a demo.
    plan.problems = [p for p in plan.problems if p.reason not in ("not_selected", "vendored")
                     and (wanted is None or "/" in p.location or p.location.removesuffix(".py") in wanted)]
    plan.not_source.clear()
    if wanted is not None:
        plan.files = [f for f in plan.files if "/" in f.rel or f.rel.removesuffix(".py") in wanted]
    return plan


def open_stdlib(source: str, opts: ReadOptions) -> tuple[int, Iterator[Snippet | IngestProblem | Advance]]:
    """(total bytes to read, items) — the folder walk happens now, the reading lazily."""
    plan = plan_stdlib(source, keep_tests=opts.keep_tests)
    if not plan.files:
        return 0, iter([IngestProblem(source, "not_found",
                                      f"no standard-library modules match {source!r} under {stdlib_root()}")])
    version = platform.python_version()
    opts = dataclasses.replace(opts, file_seeds=True)  # the demo also offers OSS-Instruct seeds

    def url(rel: str, start: int, end: int) -> str:
        return f"https://github.com/python/cpython/blob/v{version}/Lib/{rel}#L{start}-L{end}"

    return plan.total_bytes, read_plan(plan, source, "stdlib", opts, repo=f"cpython-{version}", url_fn=url,
                                       label="stdlib")
