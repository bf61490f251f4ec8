"""The sandbox stops or contains hostile code, and the calling process survives."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from core.checks.sandbox import network_isolation, run_python


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
    """Below the audit hook: the child's namespace has no route even for plain sockets."""
    name, prefix = network_isolation()
    if name == "audit-hook":
        pytest.skip("no network namespace on this machine; the audit hook is the only layer")
    import subprocess
    import sys
    out = subprocess.run([*prefix, sys.executable, "-c",
                          "import socket\ntry:\n socket.create_connection(('1.1.1.1', 80), timeout=2)\n"
                          " print('up')\nexcept OSError as e:\n print('down', e.errno)"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.startswith("down")


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
    from core.checks.execution import run_execution_checks
    from core.checks.results import current_checks
    from tests.core.checks.seed_data import add_example, oss, wave
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
