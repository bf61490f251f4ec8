"""Project-shape rules that must not regress."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_core_never_imports_streamlit():
    offenders = [str(p) for p in (ROOT / "core").rglob("*.py")
                 if re.search(r"^\s*(import streamlit|from streamlit)", p.read_text(), re.M)]
    assert offenders == []


def test_ci_calls_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme


def test_no_task_name_literal_outside_core_tasks():
    """What a task means lives in its spec (core/tasks/); other modules ask the spec, never name the task."""
    from core.tasks import TASKS

    assert len(TASKS) == 5
    quoted = re.compile(r"""(["'])(%s)\1""" % "|".join(map(re.escape, TASKS)))
    files = [p for d in ("core", "pages", "ui") for p in (ROOT / d).rglob("*.py")
             if (ROOT / "core" / "tasks") not in p.parents] + [p for p in [ROOT / "app.py"] if p.exists()]
    offenders = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files
                 for n, line in enumerate(p.read_text().splitlines(), 1) if quoted.search(line)]
    assert offenders == []
