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


MAX_FUNCTION_LINES = 80

# Functions allowed over the limit (each with its reason). Empty: keep it so.
LONG_FUNCTIONS_ALLOWED: set[str] = set()


def long_functions(root: Path = ROOT, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """Every function or method in core/, ui/ and pages/ longer than `limit` lines (def line to last
    line; a nested function counts on its own and inside its parent) -> its length. Migrations are
    exempt; a page script's module-level code is not a function, the functions it defines are."""
    import ast
    found: dict[str, int] = {}

    def visit(node: ast.AST, path: Path, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                if length > limit:
                    found[f"{path.relative_to(root).as_posix()}::{name}"] = length
                visit(child, path, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, path, prefix + child.name + ".")
            else:
                visit(child, path, prefix)

    for folder in ("core", "ui", "pages"):
        for path in sorted((root / folder).rglob("*.py")):
            if "migrations" not in path.relative_to(root).parts:
                visit(ast.parse(path.read_text()), path, "")
    return found


def test_long_function_finder(tmp_path):
    """The finder itself, on a small tree: what counts, what is exempt, how entries are named."""
    def lines(n: int, indent: str) -> str:
        return "\n".join(f"{indent}x{i} = {i}" for i in range(n))

    (tmp_path / "core" / "migrations").mkdir(parents=True)
    (tmp_path / "pages").mkdir()
    (tmp_path / "core" / "mod.py").write_text(
        f"class C:\n    def long(self):\n{lines(80, ' ' * 8)}\n"        # 81 lines: found
        f"    def short(self):\n{lines(79, ' ' * 8)}\n"                  # 80 lines: fine
        f"def outer():\n    async def inner():\n{lines(85, ' ' * 8)}\n")  # both found
    (tmp_path / "core" / "migrations" / "m.py").write_text(f"def up():\n{lines(100, '    ')}\n")
    (tmp_path / "pages" / "p.py").write_text(f"{lines(200, '')}\nif True:\n    def draw():\n{lines(90, ' ' * 8)}\n")
    assert long_functions(tmp_path) == {"core/mod.py::C.long": 81, "core/mod.py::outer": 87,
                                        "core/mod.py::outer.inner": 86, "pages/p.py::draw": 91}


def test_no_function_over_80_lines():
    """No function over ~80 lines outside migrations (one job per function; pages stay thin)."""
    found = long_functions()
    assert {k: v for k, v in found.items() if k not in LONG_FUNCTIONS_ALLOWED} == {}
    assert sorted(LONG_FUNCTIONS_ALLOWED - set(found)) == [], "now short: remove from LONG_FUNCTIONS_ALLOWED"
