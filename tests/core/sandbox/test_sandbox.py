"""The sandbox stops or contains hostile code, and the calling process survives."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from core.sandbox.isolation import run_python, sandbox_problem


def test_clean_code_runs_and_output_is_captured():
    r = run_python("import math\nprint(math.factorial(5))\n", timeout=10)
    assert r.status == "ok" and r.stdout.strip() == "120" and r.returncode == 0


def test_infinite_loop_is_stopped_by_the_wall_clock():
    t0 = time.perf_counter()
    r = run_python("while True:\n    pass\n", timeout=2)
    assert r.status == "timeout"
    assert time.perf_counter() - t0 < 8


def test_sleeping_child_cannot_outlive_timeout():
    r = run_python("import time\ntime.sleep(60)\n", timeout=1.5)
    assert r.status == "timeout" and r.seconds < 6


def test_unbounded_allocation_hits_the_memory_limit():
    r = run_python("chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 * 1024))\n",
                   timeout=20, memory_mb=256)
    assert r.status == "memory", (r.status, r.stderr)


def test_network_is_unreachable():
    """A listener in this process must never see the sandboxed client."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(2)
    port = srv.getsockname()[1]
    got = []

    def accept():
        try:
            conn, _ = srv.accept()
            got.append(conn)
        except OSError:
            pass
    t = threading.Thread(target=accept)
    t.start()
    code = ("import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "s.sendall(b'leak')\nprint('CONNECTED')\n")
    r = run_python(code, timeout=10)
    t.join()
    srv.close()
    assert not got and "CONNECTED" not in r.stdout
    assert r.status in ("blocked", "error")
    r2 = run_python("import urllib.request\nurllib.request.urlopen('http://example.com', timeout=3)\n", timeout=10)
    assert r2.status in ("blocked", "error")


def test_raw_network_namespace_when_available():
    """Below the audit hook: the sandbox's network namespace has no route even for plain sockets."""
    if sandbox_problem():
        pytest.skip(sandbox_problem())
    r = run_python("import socket\ntry:\n socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
                   " print('up')\nexcept OSError as e:\n print('down', e.errno)", timeout=10, audit_hook=False)
    assert r.stdout.startswith("down"), r


def test_writes_outside_the_workdir_are_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    code = (f"open({str(target)!r}, 'w').write('x')\n")
    r = run_python(code, timeout=10)
    assert r.status == "blocked" and not target.exists()
    for code in (f"import os\nos.remove({str(victim)!r})\n",
                 f"import shutil\nshutil.rmtree({str(tmp_path)!r})\n",
                 f"import os\nos.rename({str(victim)!r}, 'stolen.txt')\n",
                 f"import os\nos.chdir({str(tmp_path)!r})\nopen('relative.txt', 'w').write('x')\n",
                 "open('../up.txt', 'w').write('x')\n"):
        r = run_python(code, timeout=10)
        assert r.status == "blocked", (code, r.stderr)
    assert victim.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["victim.txt"]
    r = run_python("open('inside.txt', 'w').write('ok')\nprint(open('inside.txt').read())\n", timeout=10)
    assert r.status == "ok" and r.stdout.strip() == "ok"


def test_processes_cannot_be_started():
    for code in ("import os\nos.fork()\n", "import subprocess\nsubprocess.run(['echo', 'hi'])\n",
                 "import os\nos.system('echo hi')\n"):
        r = run_python(code, timeout=10)
        assert r.status == "blocked", (code, r.stderr)


def test_syntax_error_and_exceptions_are_reported():
    assert run_python("def f(:\n", timeout=10).status == "syntax_error"
    r = run_python("raise ValueError('boom')\n", timeout=10)
    assert r.status == "error" and "ValueError: boom" in r.stderr


def test_execution_check_records_results(store):
    from core.dataset.checks.execution import run_execution_checks
    from core.dataset.checks.results import current_checks
    from tests.support.seed_data import add_example, oss, wave
    ok = add_example(store, wave("Write a Python function.", "```python\ndef f(x):\n    return x + 1\n\nassert f(1) == 2\n```"))
    bad = add_example(store, wave("Write a Python function.", "def f(x):\n    return x +\n"))
    fail = add_example(store, oss("A problem", "```python\nassert 1 + 1 == 3\n```"), task="oss_instruct")
    tested_bad = add_example(store, {**wave("Write a Python function.", "def inc(x):\n    return x + 2\n"),
                                      "tests": ["assert inc(1) == 2"]})   # its own test fails
    add_example(store, wave("Write a Java method.", "class A {}"), language="java")  # not Python: skipped
    add_example(store, wave("Summarize.", "It adds one.", task="code_summarization"), task="code_summarization")
    s = run_execution_checks(store, timeout=10)
    assert s["n_examples"] == 4 and s["n_passed"] == 1
    assert "AssertionError" in json.loads(current_checks(store, "execution").set_index("generation_id")
                                          .loc[tested_bad, "detail"])["stderr"]
    cur = current_checks(store, "execution").set_index("generation_id")
    assert bool(cur.loc[ok, "passed"]) and not bool(cur.loc[bad, "passed"]) and not bool(cur.loc[fail, "passed"])
    assert json.loads(cur.loc[bad, "detail"])["status"] == "syntax_error"
    assert json.loads(cur.loc[fail, "detail"])["status"] == "error"


# --------------------------------------------------------------------------- every language: solution + tests

from core.sandbox.languages import available_languages, run_solution  # noqa: E402

# language -> (solution, passing tests, failing tests, never-ending tests, does not compile)
PROGRAMS = {
    "python": ("def add(a, b):\n    return a + b\n",
               "def test_add():\n    assert add(2, 3) == 5\n",
               "assert add(2, 3) == 6, 'add is wrong'\n",
               "while True:\n    pass\n",
               "def broken(:\n"),
    "javascript": ("function add(a, b) {\n  return a + b;\n}\n",
                   "assert.strictEqual(add(2, 3), 5);\n",
                   "assert.strictEqual(add(2, 3), 6, 'add is wrong');\n",
                   "while (true) {}\n",
                   "function broken( {\n"),
    "java": ("import java.util.*;\npublic class Calc {\n    static int add(int a, int b) { return a + b; }\n}\n",
             "public class CalcTest {\n    public static void main(String[] args) {\n"
             "        if (Calc.add(2, 3) != 5) throw new AssertionError(\"add\");\n    }\n}\n",
             "if (Calc.add(2, 3) != 6) throw new AssertionError(\"add is wrong\");\n",
             "while (true) { }\n",
             "int x = ;\n"),
    "cpp": ("#include <vector>\nint add(int a, int b) { return a + b; }\n",
            "int main() {\n    assert(add(2, 3) == 5);\n    return 0;\n}\n",
            "assert(add(2, 3) == 6 && \"add is wrong\");\n",
            "volatile long n = 0;\nwhile (true) { n++; }\n",
            "int main() { return undefined_name; }\n"),
    "rust": ("fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
             "#[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n    fn adds() { assert_eq!(add(2, 3), 5); }\n}\n",
             "fn main() {\n    assert_eq!(add(2, 3), 6, \"add is wrong\");\n}\n",
             "let mut n: u64 = 0;\nloop { n = n.wrapping_add(1); if n == 0 { println!(\"{}\", n); } }\n",
             "fn main() { let x: i32 = \"text\"; }\n"),
}


def _need(language: str) -> None:
    problem = available_languages()[language]
    if problem:
        pytest.skip(problem)


@pytest.mark.parametrize("language", list(PROGRAMS))
def test_each_language_passes_fails_times_out_and_reports_compile_errors(language):
    _need(language)
    solution, good, bad, forever, broken = PROGRAMS[language]
    ok = run_solution(language, solution, good, timeout=20)
    assert (ok.status, ok.outcome) == ("ok", "pass"), (ok.status, ok.stderr)
    failed = run_solution(language, solution, bad, timeout=20)
    assert failed.outcome == "fail" and failed.status == "error" and failed.phase == "run", failed
    assert "add is wrong" in failed.stderr + failed.stdout or language == "cpp"   # assert() prints its expression
    t0 = time.perf_counter()
    slow = run_solution(language, solution, forever, timeout=3)
    assert slow.status == "timeout" and slow.outcome == "fail" and time.perf_counter() - t0 < 60
    bad_build = run_solution(language, solution, broken, timeout=20)
    assert bad_build.outcome == "error", (bad_build.status, bad_build.stderr)
    assert bad_build.status in ("syntax_error", "compile_error") and bad_build.stderr.strip()


def test_compile_errors_are_reported_as_such():
    for language in ("javascript", "java", "cpp", "rust"):
        if available_languages()[language]:
            continue
        r = run_solution(language, PROGRAMS[language][0], PROGRAMS[language][4], timeout=20)
        assert r.status == "compile_error" and r.phase == "compile" and r.stderr.strip(), (language, r)


def test_a_missing_toolchain_or_unknown_language_is_skipped_with_a_reason(monkeypatch):
    import core.sandbox.languages as langs
    r = run_solution("cobol", "DISPLAY 'HI'.", "")
    assert r.status == "skipped" and r.outcome == "skipped" and "cannot run cobol" in r.stderr
    langs.toolchain_problem.cache_clear()
    try:
        with monkeypatch.context() as m:
            m.setattr(langs.shutil, "which", lambda name: None)
            m.setattr(langs, "_node", lambda: None)
            m.setattr(langs, "_rustc", lambda: None)
            for language, package in (("java", "default-jdk-headless"), ("cpp", "g++"), ("rust", "rustc"),
                                      ("javascript", "nodejs")):
                r = run_solution(language, "x", "y")
                assert r.status == "skipped" and package in r.stderr, (language, r.stderr)
    finally:
        langs.toolchain_problem.cache_clear()
    ts = available_languages()["typescript"]
    if ts:   # node < 22.6 cannot strip types: say so
        assert "22.6" in ts and run_solution("typescript", "const x: number = 1;", "").status == "skipped"
    else:
        r = run_solution("typescript", "function add(a: number, b: number): number { return a + b; }\n",
                         "assert.strictEqual(add(2, 3), 5);\n")
        assert r.status == "ok", r.stderr


def _listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(3)
    got = []

    def accept():
        try:
            got.append(srv.accept()[0])
        except OSError:
            pass
    t = threading.Thread(target=accept)
    t.start()
    return srv, t, got


def test_javascript_has_no_network_and_cannot_write_outside_its_directory(tmp_path):
    _need("javascript")
    srv, t, got = _listener()
    port = srv.getsockname()[1]
    code = (f"const net = require('net');\nconst s = net.connect({port}, '127.0.0.1', () => {{ s.write('leak'); "
            f"console.log('CONNECTED'); s.end(); }});\ns.on('error', e => {{ console.error('NET', e.code); "
            f"process.exit(3); }});\n")
    r = run_solution("javascript", code, "", timeout=10)
    t.join()
    srv.close()
    assert not got and "CONNECTED" not in r.stdout and r.outcome == "fail", r
    target = tmp_path / "escaped.txt"
    for attempt in (f"require('fs').writeFileSync({json.dumps(str(target))}, 'x');",
                    "require('fs').writeFileSync('/tmp/shoal-escaped.txt', 'x');",
                    "require('child_process').execSync('touch /tmp/shoal-escaped.txt');"):
        r = run_solution("javascript", attempt, "", timeout=10)
        assert r.outcome == "fail", (attempt, r)
    assert not target.exists() and not os.path.exists("/tmp/shoal-escaped.txt")
    r = run_solution("javascript", "const fs = require('fs');\nfs.writeFileSync('inside.txt', 'ok');\n",
                     "assert.strictEqual(require('fs').readFileSync('inside.txt', 'utf8'), 'ok');\n")
    assert r.status == "ok", r.stderr


def test_compiled_programs_cannot_write_outside_their_directory(tmp_path):
    """The mount namespace (read-only everything but the working directory) holds for native code."""
    _need("cpp")
    if sandbox_problem():
        pytest.skip(sandbox_problem())
    target = tmp_path / "escaped.txt"
    code = ("#include <cstdio>\nint main() {\n"
            f"    FILE* f = std::fopen({json.dumps(str(target))}, \"w\");\n"
            "    FILE* g = std::fopen(\"inside.txt\", \"w\");\n"
            "    return (f == nullptr && g != nullptr) ? 0 : 1;\n}\n")
    r = run_solution("cpp", "", code, timeout=20)
    assert r.status == "ok" and not target.exists(), r


def test_memory_is_limited_outside_python_too():
    _need("javascript")
    r = run_solution("javascript", "const a = [];\nwhile (true) a.push(new Array(1e6).fill(1));\n", "",
                     timeout=20, memory_mb=256)
    assert r.status == "memory" and r.outcome == "fail", (r.status, r.stderr[-500:])
