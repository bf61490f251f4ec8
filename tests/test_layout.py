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


def _core_import_graph() -> dict[str, set[str]]:
    """Module → the core modules it imports at run time (anywhere in the file; TYPE_CHECKING blocks excluded)."""
    import ast
    modules = {}
    for path in (ROOT / "core").rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import submodule` depends on the submodule, `from pkg import name` on pkg
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            else:
                continue
            for target in targets:
                dep = owner(target) if target.startswith("core") else None
                if dep and dep != mod:
                    graph[mod].add(dep)
    return graph


def test_core_has_no_import_cycles():
    graph, cycles = _core_import_graph(), []

    def visit(mod: str, path: list[str], done: set[str]) -> None:
        for dep in sorted(graph[mod]):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, path + [dep], done)
        done.add(mod)

    done: set[str] = set()
    for mod in sorted(graph):
        if mod not in done:
            visit(mod, [mod], done)
    # a package's __init__ re-exporting its submodules, which import each other, is not a cycle
    real = [c for c in cycles if not any(c[i + 1].startswith(c[i] + ".") for i in range(len(c) - 1))]
    assert real == []


def test_pages_hold_no_sql():
    """Pages and UI helpers read and write through core modules, never with SQL of their own."""
    sql_call = re.compile(r"\b(store|_store|cur|con)\.(rows|one|scalar|df|execute|executemany)\(")
    files = list((ROOT / "pages").glob("*.py")) + list((ROOT / "ui").rglob("*.py")) + [ROOT / "app.py"]
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in files
                 for n, line in enumerate(p.read_text().splitlines(), 1) if sql_call.search(line)]
    assert offenders == []
