"""How a solution and its tests become a program in each language, and how it is built and run.

`run_solution(language, solution, tests)` composes one source file from the solution and the
tests (the way MBPP / SelfCodeAlign run a solution against its assertions), compiles it where the
language needs that, and runs it in the sandbox (core.sandbox.isolation). A language whose toolchain
is missing on this machine is skipped with a message that says what to install.

Composition rules, so that tests written in the usual style of each language run:
* Python: solution, then the tests; `test_*` functions the tests define are called afterwards.
* JavaScript / TypeScript: solution, then the tests, in one module; `assert` (node's) is a global.
* Java: the imports of both are hoisted, `public` is dropped from top-level types (one file), and
  the class with `main` in the tests is run with assertions enabled; bare statements are wrapped
  in a `main`.
* C++: `<cassert>` is included; the tests' `int main()` runs (bare statements are wrapped in one);
  a `main` in the solution is renamed out of the way.
* Rust: the tests' `fn main()` runs (bare statements are wrapped); `#[test]` functions are built
  with `rustc --test` and run by the test harness.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache

from core.ingest.model import canonical_language as language_name
from core.sandbox.isolation import SandboxResult, run_program, run_python, skipped
from core.sandbox.step import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT, Step

LANGUAGES = ("python", "javascript", "typescript", "java", "cpp", "rust")
NOT_RUN_DIALECTS = ("jsx", "tsx")     # JSX / TSX need a compile step the sandbox's node does not have
COMPILE_TIMEOUT = 60.0
COMPILE_MEMORY_MB = 2048


def runnable_language(name: str | None) -> str | None:
    """The sandbox's name for a language (None when it is not one the sandbox knows), read through
    core.ingest.model's table of language names."""
    if not isinstance(name, str) or name.strip().lower() in NOT_RUN_DIALECTS:
        return None
    lang = language_name(name)
    return lang if lang in LANGUAGES else None


# --------------------------------------------------------------------------- toolchains

@lru_cache(maxsize=1)
def _node() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


def _node_program() -> str:
    """The node to start. Steps are built only after `unavailable()` found one; without it the
    plain name makes a spawn fail as "not found", like any missing program."""
    return _node() or "node"


@lru_cache(maxsize=4)
def _node_accepts(*flags: str) -> bool:
    node = _node()
    if not node:
        return False
    try:
        return subprocess.run([node, *flags, "-e", "0"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@lru_cache(maxsize=1)
def _node_permission_flags() -> tuple[str, ...]:
    """Node's permission model (blocks child processes, workers and writes outside the directory):
    `--permission` (node 23.5+) or `--experimental-permission` (node 20-23), when present."""
    for flag in ("--permission", "--experimental-permission"):
        if _node_accepts(flag, "--allow-fs-read=*"):
            return (flag, "--allow-fs-read=*", "--allow-fs-write=.")
    return ()


@lru_cache(maxsize=1)
def _rustc() -> str | None:
    """The real rustc binary: a rustup proxy needs the caller's HOME, so resolve its toolchain."""
    rustc = shutil.which("rustc")
    if not rustc:
        return None
    try:
        sysroot = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return rustc
    real = f"{sysroot}/bin/rustc" if sysroot else ""
    return real if real and shutil.which(real) else rustc


@lru_cache(maxsize=1)
def toolchain_roots() -> tuple[str, ...]:
    """Install prefixes of this machine's toolchains; the sandbox binds those outside /usr read-only
    (a rustup toolchain in the home directory, a JDK or node under /opt)."""
    tools = (_node(), shutil.which("javac"), shutil.which("java"), shutil.which("g++"), shutil.which("cc"), _rustc())
    return tuple(os.path.dirname(os.path.dirname(os.path.realpath(t))) for t in tools if t)


def _node_version() -> str:
    try:
        return subprocess.run([_node_program(), "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError, TypeError):
        return "unknown"


@lru_cache(maxsize=8)
def toolchain_problem(language: str) -> str | None:
    """Why `language` cannot run here (None when it can)."""
    need = {"javascript": "node (Debian package nodejs)", "typescript": "node (Debian package nodejs)",
            "java": "javac and java (Debian package default-jdk-headless)", "cpp": "g++ (Debian package g++)",
            "rust": "rustc (Debian package rustc)"}
    if language == "python":
        return None
    if language not in need:
        return f"the sandbox cannot run {language} code"
    present = {"javascript": bool(_node()), "typescript": bool(_node()),
               "java": bool(shutil.which("javac") and shutil.which("java")), "cpp": bool(shutil.which("g++")),
               "rust": bool(_rustc())}[language]
    if not present:
        return f"{language} toolchain not found: install {need[language]}"
    if language == "typescript" and not _node_accepts("--experimental-strip-types", "--no-warnings"):
        return (f"TypeScript needs node 22.6 or newer (--experimental-strip-types); this machine has node "
                f"{_node_version()}")
    return None


def available_languages() -> dict[str, str | None]:
    """Each language the sandbox knows -> None when it runs here, else why not."""
    return {lang: toolchain_problem(lang) for lang in LANGUAGES}


# --------------------------------------------------------------------------- composing programs

_JS_ASSERT_IMPORT = re.compile(r"^\s*(?:(?:const|let|var)\s+assert\s*=\s*require\(\s*['\"](?:node:)?assert(?:/strict)?['\"]\s*\)"
                               r"|import\s+(?:\*\s+as\s+)?assert\s+from\s+['\"](?:node:)?assert(?:/strict)?['\"])\s*;?\s*$", re.M)
_ESM = re.compile(r"^\s*(?:import\s+[\w*{]|import\s+['\"]|export\s+)", re.M)
_PY_TEST_FN = re.compile(r"^def\s+test\w*\s*\(", re.M)
_PY_CALL_TESTS = """

# --- run the test functions ---
import inspect as _shoal_inspect
for _shoal_name, _shoal_fn in list(globals().items()):
    if _shoal_name.startswith("test") and _shoal_inspect.isfunction(_shoal_fn) \\
            and _shoal_fn.__module__ == "__main__" and not _shoal_inspect.signature(_shoal_fn).parameters:
        _shoal_fn()
"""


def python_program(solution: str, tests: str) -> str:
    if not tests.strip():
        return solution
    program = f"{solution}\n\n# --- tests ---\n{tests}\n"
    return program + (_PY_CALL_TESTS if _PY_TEST_FN.search(tests) else "")


def _javascript(solution: str, tests: str, timeout: float, memory_mb: int, typescript: bool) -> tuple[dict, list[Step]]:
    tests = _JS_ASSERT_IMPORT.sub("", tests)     # `assert` is already a global (the preload below)
    source = f"{solution}\n\n// --- tests ---\n{tests}\n"
    name = "solution.ts" if typescript else ("solution.mjs" if _ESM.search(source) else "solution.js")
    heap = max(32, memory_mb * 3 // 4)
    flags = [*_node_permission_flags(), "--no-warnings", f"--max-old-space-size={heap}"]
    if typescript:
        flags.append("--experimental-strip-types")
    files = {name: source, "_shoal_preload.cjs": 'globalThis.assert = require("assert");\n'}
    run = Step((_node_program(), *flags, "--require", "./_shoal_preload.cjs", name), "run", timeout, memory_mb + 256, "data",
               open_files=512)
    if typescript:
        return files, [run]
    # a syntax check first, so that code that does not parse is told apart from code that fails
    check = Step((_node_program(), "--no-warnings", "--check", name), "compile", COMPILE_TIMEOUT, COMPILE_MEMORY_MB, "data",
                 open_files=512)
    return files, [check, run]


_JAVA_IMPORT = re.compile(r"^\s*import\s+(?:static\s+)?[\w.]+(?:\.\*)?\s*;\s*$", re.M)
_JAVA_PACKAGE = re.compile(r"^\s*package\s+[\w.]+\s*;\s*$", re.M)
_JAVA_PUBLIC_TYPE = re.compile(r"^public\s+(?=(?:(?:final|abstract|sealed|strictfp)\s+)*(?:class|interface|enum|record)\b)",
                               re.M)
_JAVA_MAIN = re.compile(r"\bstatic\s+void\s+main\s*\(")
_JAVA_CLASS = re.compile(r"\b(?:class|record|enum)\s+(\w+)")


def _java(solution: str, tests: str, timeout: float, memory_mb: int) -> tuple[dict, list[Step]]:
    imports = sorted(set(_JAVA_IMPORT.findall(solution)) | set(_JAVA_IMPORT.findall(tests)))
    parts = []
    for text in (solution, tests):
        text = _JAVA_PACKAGE.sub("", _JAVA_IMPORT.sub("", text))
        parts.append(_JAVA_PUBLIC_TYPE.sub("", text))
    body, test_body = parts
    main = _JAVA_MAIN.search(test_body)
    if main:
        classes = [m for m in _JAVA_CLASS.finditer(test_body) if m.start() < main.start()]
        main_class = classes[-1].group(1) if classes else "ShoalTests"
    else:
        main_class = "ShoalTests"
        test_body = (f"class {main_class} {{\n    public static void main(String[] args) throws Exception {{\n"
                     f"{test_body}\n    }}\n}}\n")
    source = "\n".join(i.strip() for i in imports) + f"\n\n{body}\n\n// --- tests ---\n{test_body}\n"
    heap = max(32, memory_mb // 2)
    jvm = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData", "-Xshare:auto")
    steps = [Step(("javac", "-encoding", "UTF-8", "-nowarn", "-d", ".", *(f"-J{o}" for o in jvm), "-J-Xmx768m",
                   "Main.java"), "compile", COMPILE_TIMEOUT, COMPILE_MEMORY_MB, "data", open_files=1024),
             Step(("java", "-ea", f"-Xmx{heap}m", "-Xss8m", *jvm, "-Djava.io.tmpdir=.", "-cp", ".", main_class),
                  "run", timeout, memory_mb + 384, "data", open_files=512)]
    return {"Main.java": source}, steps


_CPP_MAIN = re.compile(r"\bint\s+main\s*\(")


def _cpp(solution: str, tests: str, timeout: float, memory_mb: int) -> tuple[dict, list[Step]]:
    if not _CPP_MAIN.search(tests):
        tests = f"int main() {{\n{tests}\n    return 0;\n}}\n"
    if _CPP_MAIN.search(solution):   # the tests' main is the one that runs
        solution = f"#define main shoal_solution_main\n{solution}\n#undef main\n"
    source = f"#include <cassert>\n{solution}\n\n// --- tests ---\n{tests}\n"
    steps = [Step(("g++", "-std=c++17", "-O1", "-pipe", "-w", "-o", "program", "program.cpp"), "compile",
                  COMPILE_TIMEOUT, COMPILE_MEMORY_MB, "as"),
             Step(("./program",), "run", timeout, memory_mb, "as")]
    return {"program.cpp": source}, steps


_RUST_MAIN = re.compile(r"\bfn\s+main\s*\(\s*\)")
_RUST_TEST_ATTR = re.compile(r"#\[\s*test\s*\]")


def _rust(solution: str, tests: str, timeout: float, memory_mb: int) -> tuple[dict, list[Step]]:
    harness = bool(_RUST_TEST_ATTR.search(tests))
    if not harness and not _RUST_MAIN.search(tests):
        tests = f"fn main() {{\n{tests}\n}}\n"
    if _RUST_MAIN.search(solution) and (harness or _RUST_MAIN.search(tests)):
        solution = _RUST_MAIN.sub("fn shoal_solution_main()", solution, count=1)
    source = f"{solution}\n\n// --- tests ---\n{tests}\n"
    rustc = _rustc() or "rustc"
    bindir = rustc.rsplit("/", 1)[0] if "/" in rustc else "/usr/bin"
    compile_argv = (rustc, "--edition", "2021", "-C", "opt-level=1", "-C", "debuginfo=0", "-A", "warnings",
                    *(("--test",) if harness else ()), "-o", "program", "program.rs")
    run_argv = ("./program", "--test-threads=1") if harness else ("./program",)
    steps = [Step(compile_argv, "compile", COMPILE_TIMEOUT, COMPILE_MEMORY_MB, "data", open_files=1024,
                  env=(("PATH", f"{bindir}:/usr/local/bin:/usr/bin:/bin"),)),
             Step(run_argv, "run", timeout, memory_mb, "as", env=(("RUST_BACKTRACE", "0"),))]
    return {"program.rs": source}, steps


def run_solution(language: str | None, solution: str, tests: str = "", timeout: float = DEFAULT_TIMEOUT,
                 memory_mb: int = DEFAULT_MEMORY_MB) -> SandboxResult:
    """Build and run `solution` followed by `tests` (both plain code) in the sandbox."""
    lang = runnable_language(language)
    if lang is None:
        return skipped(str(language or "unknown"), f"the sandbox cannot run {language or 'unknown-language'} code")
    problem = toolchain_problem(lang)
    if problem:
        return skipped(lang, problem)
    if lang == "python":
        return run_python(python_program(solution, tests), timeout, memory_mb)
    if lang in ("javascript", "typescript"):
        files, steps = _javascript(solution, tests, timeout, memory_mb, lang == "typescript")
    elif lang == "java":
        files, steps = _java(solution, tests, timeout, memory_mb)
    elif lang == "cpp":
        files, steps = _cpp(solution, tests, timeout, memory_mb)
    else:
        files, steps = _rust(solution, tests, timeout, memory_mb)
    return run_program(files, steps, lang, toolchain_roots())
