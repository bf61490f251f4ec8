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


def test_a_page_file_is_named_only_in_the_page_table():
    """Pages are linked by title (ui.app_pages.page); the scripts' file names live in ui/app_pages.py only."""
    scripts = sorted(p.name for p in (ROOT / "pages").glob("*.py"))
    assert len(scripts) >= 8
    named = re.compile("|".join(map(re.escape, scripts)))
    files = [p for d in ("core", "pages", "ui") for p in (ROOT / d).rglob("*.py")
             if p != ROOT / "ui" / "app_pages.py"] + [ROOT / "app.py"]
    offenders = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}" for p in files
                 for n, line in enumerate(p.read_text().splitlines(), 1) if named.search(line)]
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


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk of `graph` meets (each as the path that closes it)."""
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str], done: set[str]) -> None:
        for dep in sorted(graph.get(node, ())):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, path + [dep], done)
        done.add(node)

    done: set[str] = set()
    for node in sorted(graph):
        if node not in done:
            visit(node, [node], done)
    return cycles


def _package_of(module: str) -> str:
    """The stage folder a core module lies in (core.review for core.review.items, core.dataset for
    core.dataset.checks.neardup); a module at core/'s root (core.store, core.config) is its own."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and (ROOT / "core" / parts[1]).is_dir() else module


def _package_imports() -> dict[tuple[str, str], list[str]]:
    """(package, package it imports) -> the module imports that make that edge, at run time
    (imports inside functions count; TYPE_CHECKING blocks do not)."""
    edges: dict[tuple[str, str], list[str]] = {}
    for mod, deps in _core_import_graph().items():
        for dep in sorted(deps):
            a, b = _package_of(mod), _package_of(dep)
            if a != b:
                edges.setdefault((a, b), []).append(f"{mod} -> {dep}")
    return edges


def test_core_has_no_import_cycles():
    """No module imports itself back, and no stage (a folder under core/, or a module at its root)
    imports another that imports it back, by any path, through a package __init__ or not."""
    assert _cycles(_core_import_graph()) == []
    edges = _package_imports()
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    loops = [" -> ".join(c) + ": " + "; ".join(i for x, y in zip(c, c[1:]) for i in edges[(x, y)])
             for c in _cycles(graph)]
    assert loops == []


def test_review_never_imports_dataset():
    """The dataset stage may read the review stage (verdicts, agreement); review never imports dataset."""
    offenders = sorted(f"{mod} -> {dep}" for mod, deps in _core_import_graph().items() if mod.startswith("core.review")
                       for dep in deps if dep == "core.dataset" or dep.startswith("core.dataset."))
    assert offenders == []


def test_pages_hold_no_sql():
    """Pages, UI helpers and the CLI read and write through core modules, never with SQL of their own."""
    sql_call = re.compile(r"\b(store|_store|cur|con)\.(rows|one|scalar|df|execute|executemany)\(")
    files = (list((ROOT / "pages").glob("*.py")) + list((ROOT / "ui").rglob("*.py")) + [ROOT / "app.py"]
             + list((ROOT / "core" / "cli").rglob("*.py")))
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


# Names every module of a kind defines on purpose: the registry reads them (core.tasks: TASK; core.cli.main:
# add_commands), and a module's logger (log).
MODULE_PROTOCOL_NAMES = {"TASK", "add_commands", "log"}


def test_no_public_name_is_defined_twice_in_core():
    """A public function, class or constant has one home in core/ (a package __init__ may re-export it)."""
    import ast
    homes: dict[str, list[str]] = {}
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                continue
            for name in names:
                if not name.startswith("_") and name not in MODULE_PROTOCOL_NAMES:
                    homes.setdefault(name, []).append(str(path.relative_to(ROOT)))
    assert {n: sorted(set(p)) for n, p in homes.items() if len(set(p)) > 1} == {}


def test_no_core_module_over_500_lines():
    """A module of core/ does one job; past 500 lines it does several (split it where the jobs part)."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "core").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_shared_test_builders_live_in_tests_support():
    """A test file imports builders from tests/support only (never from another test module or a
    conftest), and bench/ imports nothing else of tests/."""
    other = re.compile(r"^\s*(from|import) tests(\.(?!support\b)[\w.]+)?( |$)", re.M)
    files = [*(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")]
    offenders = [f"{p.relative_to(ROOT)}:{m.group(0).strip()}" for p in files
                 if (ROOT / "tests" / "support") not in p.parents
                 for m in other.finditer(p.read_text())]
    assert offenders == []
