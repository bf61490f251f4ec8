"""Issue 19's attacks through the public route: hostile generated examples in a database, then
`shoal check --exec` (a subprocess whose environment holds the canary key, as the app's would) and
the export. Checked from outside: nothing written outside the working directory, nothing read from
the database or root-only files, no connection, no process alive afterwards, the run within its
deadline, the canary nowhere (database, CLI output, export). A language whose toolchain is missing
is skipped with its reason; without an OS sandbox the whole module is skipped with the fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.sandbox.isolation import VIOLATIONS, run_python, sandbox_problem
from core.sandbox.languages import available_languages
from tests.support import attacks
from tests.support.attack_traces import CANARY, survivors
from tests.support.seed_data import add_example, wave

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 3
SLACK = 6   # seconds over the deadline a run may take (start-up, the kill, a loaded machine)
COMPILE_ALLOWANCE = {"cpp": 15, "java": 15}   # a compile step comes first (its own deadline is 60 s)

pytestmark = pytest.mark.skipif(bool(sandbox_problem()), reason=str(sandbox_problem()))

PROGRAMS = {"python": attacks.PY, "cpp": attacks.CPP, "javascript": attacks.JS, "java": attacks.JAVA}
# attacks that leave processes behind or never end: the sandbox's verdict must say so
PROCESS_ATTACKS = {"fork_setsid", "pipe_holder", "fork_bomb", "spawn_survivor"}


def _fields(language: str, code: str) -> dict:
    if language == "python":
        return wave("attack", code)
    if language == "javascript":
        return {**wave("attack", code), "tests": ["assert.ok(true);"]}
    marker = "int shoal_attack = 1;" if language == "cpp" else "class Helper {}"
    return {**wave("attack", marker), "tests": [code]}


def _seed(arena, language: str) -> dict[int, str]:
    from core.store import open_store
    store = open_store(arena.db)
    try:
        return {add_example(store, _fields(language, attacks.fill(code, arena)), language=language,
                            verdict="accepted"): name
                for name, code in PROGRAMS[language].items()}
    finally:
        store.close()


def _shoal(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENAI_API_KEY": CANARY, "SHOAL_JUDGE_API_KEY": CANARY}
    return subprocess.run([sys.executable, "-m", "core.cli.main", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=600)


def _details(db: Path) -> dict[int, dict]:
    from core.dataset.checks.results import current_checks
    from core.store import open_store
    store = open_store(db, read_only=True)
    try:
        cur = current_checks(store, "execution")
        return {int(g): json.loads(d) for g, d in zip(cur["generation_id"], cur["detail"])}
    finally:
        store.close()


def _no_canary_in(path: Path) -> None:
    for p in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
        assert CANARY.encode() not in p.read_bytes(), p


@pytest.mark.parametrize("language", list(PROGRAMS))
def test_attacks_through_shoal_check_exec_and_export(arena, language, tmp_path):
    problem = available_languages()[language]
    if problem:
        pytest.skip(problem)
    names = _seed(arena, language)
    t0 = time.monotonic()
    r = _shoal("--db", str(arena.db), "check", "--exec", "--no-dedup", "--json", "--timeout", str(TIMEOUT))
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-3000:]
    assert CANARY not in r.stdout + r.stderr
    details = _details(arena.db)
    assert set(details) == set(names), (r.stdout[-2000:], details)
    for gid, name in names.items():
        d = details[gid]
        text = d["stdout"] + d["stderr"]
        assert "LEAK" not in text, (name, d)
        assert d["outcome"] != "pass", (name, d)
        assert d["seconds"] <= TIMEOUT + SLACK + COMPILE_ALLOWANCE.get(language, 0), (name, d)
        if name in PROCESS_ATTACKS:
            assert d["status"] in VIOLATIONS, (name, d)
    assert elapsed < 60 + len(names) * (TIMEOUT + SLACK)
    assert arena.written_outside() == [] and not arena.connections
    assert not Path("/usr/shoal-escape.txt").exists() and not Path("/shoal-escape.txt").exists()
    assert survivors() == []
    _no_canary_in(arena.db)
    out = tmp_path / "export"
    e = _shoal("--db", str(arena.db), "export", "--format", "alpaca", "--out", str(out),
               "--include-failed-execution", "--json")
    exported = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()] \
        if (out / "train.jsonl").exists() else []
    stopped = {gid for gid, d in details.items() if d.get("violation")}
    assert len(exported) == len(names) - len(stopped), (e.stdout, e.stderr)
    assert CANARY not in e.stdout + e.stderr
    if out.exists():
        _no_canary_in(out)
        assert all((p.stat().st_mode & 0o077) == 0 for p in [out, *out.rglob("*")])


@pytest.mark.parametrize("name", list(attacks.PY))
def test_python_attacks_against_the_os_layer_alone(arena, name, monkeypatch):
    """The same Python attacks with the audit hook left out: bubblewrap alone stops them."""
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    t0 = time.monotonic()
    r = run_python(attacks.fill(attacks.PY[name], arena), timeout=TIMEOUT, audit_hook=False)
    assert time.monotonic() - t0 <= TIMEOUT + SLACK
    assert "LEAK" not in r.stdout + r.stderr and CANARY not in r.stdout + r.stderr, r
    assert r.outcome == "fail", r
    if name in PROCESS_ATTACKS:
        assert r.violation, r
    assert arena.written_outside() == [] and not arena.connections
    assert survivors() == []
