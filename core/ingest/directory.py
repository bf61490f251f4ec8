"""Local folders and git checkouts: walk, skip what should not be mined, extract functions.

Skipped with a counted reason: .gitignore'd paths ('gitignored'), vendored folders
('vendored': node_modules, vendor, third_party, ...), test code unless kept ('test_code', one row
per source file: test folders and test file names, the rule is `filters.why_test_code`),
unsupported languages, and in sourcefile.py binary, huge, generated, minified, empty and
undecodable files.
VCS and cache folders (.git, __pycache__, ...) are skipped silently; other non-code files
(README.md, images, ...) are counted in one 'not_source_code' row per folder.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection, Iterator

import pathspec

from core.ingest.filters import TEST_CODE, why_test_code
from core.ingest.gitinfo import git_info
from core.ingest.model import EXTENSIONS, OTHER_CODE_EXTENSIONS, Advance, IngestProblem, ReadOptions, Snippet
from core.ingest.roots import SYMLINK_OUTSIDE, link_outside
from core.ingest.sourcefile import UrlFn, read_source_file

VENDORED_DIRS = frozenset({"node_modules", "vendor", "vendors", "third_party", "third-party", "thirdparty",
                           "bower_components", "jspm_packages", "site-packages", "dist-packages",
                           ".venv", "venv", "Pods", "_vendor"})
QUIET_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".tox",
                        ".nox", ".ruff_cache", ".idea", ".gradle", ".cache", ".eggs"})


@dataclass
class PlannedFile:
    path: Path
    rel: str          # posix path relative to the folder (the file name for a single file)
    language: str
    size: int


@dataclass
class Plan:
    files: list[PlannedFile] = field(default_factory=list)
    problems: list[IngestProblem] = field(default_factory=list)
    not_source: Counter = field(default_factory=Counter)   # extension -> count

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


class _GitIgnore:
    """Every .gitignore under the root, each applying to its own folder; the deepest match wins."""

    def __init__(self) -> None:
        self.specs: list[tuple[str, pathspec.PathSpec]] = []   # (folder rel, spec), shallow first

    def load(self, folder: Path, rel_folder: str) -> None:
        gi = folder / ".gitignore"
        if gi.is_file():
            try:
                lines = gi.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                return
            self.specs.append((rel_folder, pathspec.GitIgnoreSpec.from_lines(lines)))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        for base, spec in reversed(self.specs):
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1:] if base else rel
            res = spec.check_file(sub + "/" if is_dir else sub)
            if res.include is not None:
                return bool(res.include)
        return False


def plan_directory(root: Path, *, gitignore: bool = True, extensions: dict[str, str] | None = None,
                   skip_dir: Callable[[str, str], str | None] | None = None, keep_tests: bool = False,
                   extra_test_dirs: Collection[str] = ()) -> Plan:
    """Every file to read under `root`, plus the skips. `skip_dir(rel, name)` may return a reason
    to skip a folder (used by the stdlib reader for modules not asked for). Test code is skipped
    unless `keep_tests`; `extra_test_dirs` names more test folders (the stdlib's idle_test)."""
    extensions = extensions or EXTENSIONS
    plan = Plan()
    ignore = _GitIgnore()
    root = root.resolve()
    def unreadable(exc: OSError) -> None:
        try:
            rel = Path(exc.filename).resolve().relative_to(root).as_posix()
        except (TypeError, ValueError):
            rel = str(exc.filename or root)
        plan.problems.append(IngestProblem(rel + "/", "unreadable", f"cannot list the folder: {exc.strerror or exc}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        here = Path(dirpath)
        rel_here = here.relative_to(root).as_posix()
        rel_here = "" if rel_here == "." else rel_here
        if gitignore:
            ignore.load(here, rel_here)
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_here}/{d}" if rel_here else d
            if d in QUIET_DIRS or _left_root(plan, here / d, root, rel + "/"):
                continue
            reason = skip_dir(rel, d) if skip_dir else None
            if reason:
                plan.problems.append(IngestProblem(rel + "/", reason, f"folder {d!r} skipped", "filtered"))
                continue
            if d in VENDORED_DIRS:
                plan.problems.append(IngestProblem(rel + "/", "vendored", f"vendored folder {d!r} skipped", "filtered"))
                continue
            if gitignore and ignore.ignored(rel, True):
                plan.problems.append(IngestProblem(rel + "/", "gitignored", "folder matched by .gitignore", "filtered"))
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = f"{rel_here}/{name}" if rel_here else name
            path = here / name
            suffix = Path(name).suffix.lower()
            if name == ".gitignore" or _left_root(plan, path, root, rel):
                continue
            if gitignore and ignore.ignored(rel, False):
                plan.problems.append(IngestProblem(rel, "gitignored", "file matched by .gitignore", "filtered"))
                continue
            language = extensions.get(suffix)
            if language is not None and not keep_tests:
                why = why_test_code(rel, extra_test_dirs)
                if why:
                    plan.problems.append(IngestProblem(rel, TEST_CODE, f"test code ({why})", "filtered"))
                    continue
            if language is None:
                other = OTHER_CODE_EXTENSIONS.get(suffix)
                if other is not None:
                    plan.problems.append(IngestProblem(rel, "unsupported_language",
                                                       f"{other} files are not parsed (no tree-sitter grammar here)",
                                                       "filtered"))
                else:
                    plan.not_source[suffix or name] += 1
                continue
            try:
                size = path.stat().st_size
            except OSError as exc:
                plan.problems.append(IngestProblem(rel, "unreadable", f"cannot stat the file: {exc.strerror or exc}"))
                continue
            plan.files.append(PlannedFile(path, rel, language, size))
    return plan


def _left_root(plan: Plan, path: Path, root: Path, rel: str) -> bool:
    """A symlink out of the folder is not followed: counted as an error, and True."""
    target = link_outside(path, root)
    if target is None:
        return False
    plan.problems.append(IngestProblem(rel, SYMLINK_OUTSIDE, f"a symlink to {target}, outside the folder: not read"))
    return True


def not_source_problem(plan: Plan, label: str) -> IngestProblem | None:
    if not plan.not_source:
        return None
    n = sum(plan.not_source.values())
    top = ", ".join(f"{ext} ×{c}" for ext, c in plan.not_source.most_common(8))
    return IngestProblem(label, "not_source_code", f"{n} files that are not source code in a supported language: {top}",
                         "filtered")


def read_plan(plan: Plan, source: str, source_kind: str, opts: ReadOptions, repo: str | None = None,
              url_fn: UrlFn | None = None, label: str = "") -> Iterator[Snippet | IngestProblem | Advance]:
    yield from plan.problems
    extra = not_source_problem(plan, label or source)
    if extra:
        yield extra
    done = 0
    for f in plan.files:
        yield from read_source_file(f.path, f.rel, f.language, source, source_kind, opts, repo=repo, url_fn=url_fn)
        done += f.size
        yield Advance(done, f.rel)


def open_directory(root: Path, source: str, opts: ReadOptions) -> tuple[int, Iterator[Snippet | IngestProblem | Advance]]:
    """A folder or git checkout: (total bytes to read, items); walked now, read lazily."""
    info = git_info(root)
    plan = plan_directory(root, keep_tests=opts.keep_tests)
    repo = info.repo if info else root.resolve().name
    return plan.total_bytes, read_plan(plan, source, "dir", opts, repo=repo,
                                       url_fn=info.permalink if info else None, label=root.name or str(root))


def read_single_source_file(path: Path, source: str, opts: ReadOptions) -> Iterator[Snippet | IngestProblem | Advance]:
    suffix = path.suffix.lower()
    language = EXTENSIONS.get(suffix)
    if language is None:
        other = OTHER_CODE_EXTENSIONS.get(suffix)
        yield IngestProblem(path.name, "unsupported_language" if other else "unsupported_file_type",
                            f"{other} files are not parsed" if other else
                            "not a supported source or data file (.jsonl, .jsonl.gz, .parquet, or source code)")
        return
    yield from read_source_file(path, path.name, language, source, "dir", opts, repo=path.resolve().parent.name)
    yield Advance(path.stat().st_size if path.exists() else 0, path.name)
