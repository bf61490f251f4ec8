"""Secrets never reach what Shoal stores or sends (core.redact at the boundaries), Shoal's files are
owner-only, and without an OS sandbox execution is refused and counted, never run unconfined."""
from __future__ import annotations

import json
import os
import stat

import pytest

from core.redact import redact, redact_obj
from core.sandbox import isolation as sandbox
from tests.support.attack_traces import CANARY

SESSION_KEY = "sk-ant-api03-SESSIONKEY4242424242424242"


def test_key_shapes_and_configured_keys_are_redacted(monkeypatch):
    from core import config
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    monkeypatch.setenv("SHOAL_JUDGE_API_KEY", "plain-judge-secret-123456")
    name = config.session_key_name("generator", "tok")
    config.hold_session_key(name, SESSION_KEY)   # a key typed into the Models panel
    try:
        text = (f"env {CANARY} judge plain-judge-secret-123456 typed {SESSION_KEY} "
                "Authorization: Bearer abcdEFGH1234ijkl5678 hf_abcdefghijklmnopqrstuvwxyz123456 "
                'api_key="a1b2c3d4e5f6g7h8i9j0"')
        out = redact(text)
        for secret in (CANARY, "plain-judge-secret-123456", SESSION_KEY, "abcdEFGH1234ijkl5678",
                       "hf_abcdefghijklmnopqrstuvwxyz123456", "a1b2c3d4e5f6g7h8i9j0"):
            assert secret not in out, (secret, out)
        # ordinary code is left alone
        code = "token = self.tokenizer.tokenize(text)\ntask-manager-for-long-names = 1\nkey = 'sk-your-key-here'\n"
        assert redact(code) == code
        req = redact_obj({"messages": [{"role": "user", "content": f"fix: {CANARY}"}], "model": "m"})
        assert CANARY not in json.dumps(req) and req["model"] == "m"
    finally:
        config.hold_session_key(name, "")


def test_execution_output_and_repair_prompts_are_redacted(monkeypatch):
    from core.sandbox.example import execution_detail, failure_report
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    r = sandbox.SandboxResult("error", 1, f"out {CANARY}", f"AssertionError: {CANARY}", 0.1, "netns")
    assert CANARY not in json.dumps(execution_detail(r)) and CANARY not in failure_report(r)


def test_llm_calls_rows_are_redacted(store, monkeypatch):
    from core.llm.calllog import insert_calls
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    row = ["h", "generator", "http://x", "m", json.dumps({"messages": [{"content": CANARY}]}), f"reply {CANARY}",
           "json", 1, 1, 1.0, 0.0, f"http 401: Incorrect API key provided: {CANARY}", 401]
    insert_calls(store.cursor(), [row])
    insert_calls(store.cursor(), [row, row])
    stored = json.dumps(store.rows("SELECT request, response_text, error FROM llm_calls"), default=str)
    assert CANARY not in stored and "[REDACTED]" in stored


def test_the_cli_error_line_is_redacted(monkeypatch, capsys):
    import typer

    from core.cli.common import fail
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    with pytest.raises(typer.Exit):
        fail(f"provider said: bad key {CANARY}")
    captured = capsys.readouterr()
    assert CANARY not in captured.out + captured.err


def test_the_database_and_its_wal_are_owner_only(tmp_path):
    from core.store import open_store
    s = open_store(tmp_path / "p.duckdb")
    try:
        s.execute("CHECKPOINT")
        s.execute("CREATE TABLE t(x INT)")
        s.execute("INSERT INTO t VALUES (1)")   # DuckDB makes the WAL afresh after a checkpoint
        for p in tmp_path.iterdir():
            assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0, (p, oct(p.stat().st_mode))
    finally:
        s.close()


@pytest.fixture
def no_sandbox(monkeypatch):
    sandbox.sandbox_backend.cache_clear()
    monkeypatch.setattr(sandbox, "_bwrap_candidates", lambda: [])
    monkeypatch.delenv(sandbox.UNSAFE_ENV, raising=False)
    yield
    sandbox.sandbox_backend.cache_clear()


def test_without_a_sandbox_execution_is_refused_and_counted(store, no_sandbox, monkeypatch, tmp_path):
    from core.dataset.checks.execution import run_execution_checks
    from tests.support.seed_data import add_example, wave
    marker = tmp_path / "ran.txt"
    for i in range(3):
        add_example(store, wave("Write a function.", f"open({str(marker)!r}, 'w').write('{i}')\n"))
    s = run_execution_checks(store, timeout=5)
    assert s["n_examples"] == 0 and s["n_skipped"] == 3 and not marker.exists()
    (reason, n), = s["skipped_reasons"].items()
    assert n == 3 and "bubblewrap" in reason and "install" in reason
    assert "bubblewrap" in (sandbox.sandbox_problem() or "")
    # the loudly named opt-in runs them in the weak mode
    sandbox.sandbox_backend.cache_clear()
    monkeypatch.setenv(sandbox.UNSAFE_ENV, "1")
    assert sandbox.sandbox_backend().kind == "unsafe" and "WITHOUT" in (sandbox.sandbox_problem() or "")
    r = sandbox.run_python("print('weak mode')\n", timeout=10)
    assert r.status == "ok" and r.fs_isolation == "audit-hook"


def test_cli_says_why_execution_was_skipped(tmp_path):
    """`shoal check --exec` on a machine without a sandbox (no bwrap on PATH, no bundled binary)."""
    import subprocess
    import sys
    from pathlib import Path

    from core.store import open_store
    from tests.support.seed_data import add_example, wave
    db = tmp_path / "s.duckdb"
    s = open_store(db)
    add_example(s, wave("Write a function.", "print(1)\n"))
    s.close()
    code = ("import core.sandbox.isolation as sb; sb._bwrap_candidates = lambda: []; "
            "from core.cli.main import main; main()")
    r = subprocess.run([sys.executable, "-c", code, "--db", str(db), "check", "--exec", "--no-dedup"],
                       capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], timeout=300,
                       env={k: v for k, v in os.environ.items() if k != sandbox.UNSAFE_ENV})
    assert r.returncode == 0, r.stderr
    assert "Not run" in r.stderr and "1 examples" in r.stderr and "bubblewrap" in r.stderr, r.stderr
