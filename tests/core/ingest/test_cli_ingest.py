"""`shoal ingest` through typer's CliRunner (same code path as the console script)."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from core.cli.main import app
from core.store import open_store
from tests.support.ingest_data import CSN_HF, CSN_ORIGINAL

runner = CliRunner()


def _ingest(db, *args):
    return runner.invoke(app, ["--db", str(db), "ingest", *args])


def test_json_output_counts_and_reingest(tmp_path):
    db = tmp_path / "cli.duckdb"
    res = _ingest(db, "--json", str(CSN_ORIGINAL), str(CSN_HF))
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {"ingested", "duplicates", "filtered", "errors"} <= set(out)
    assert out["ingested"] == 18 and out["errors"] == [] and out["languages"]["python"] == 3
    again = json.loads(_ingest(db, "--json", str(CSN_ORIGINAL)).stdout)
    assert again["ingested"] == 0 and again["duplicates"] == 12
    with open_store(db) as s:
        assert s.scalar("SELECT count(*) FROM snippets") == 18


def test_options_min_max_blacklist(tmp_path):
    db = tmp_path / "cli.duckdb"
    res = _ingest(db, "--json", "--min-chars", "100", "--max-chars", "300", "--blacklist", "startswith",
                  "--format", "codesearchnet", str(CSN_ORIGINAL))
    out = json.loads(res.stdout)
    assert res.exit_code == 0
    assert out["filtered_by_reason"]["too_long"] >= 1 and out["filtered_by_reason"]["blacklisted_word"] == 1
    with open_store(db) as s:
        params = json.loads(s.scalar("SELECT params FROM ingests"))
        assert params["blacklist"] == ["startswith"] and params["min_chars"] == 100
        assert s.scalar("SELECT min(n_chars) >= 100 AND max(n_chars) <= 300 FROM snippets")


def test_exit_code_one_only_when_nothing_could_be_read(tmp_path):
    db = tmp_path / "cli.duckdb"
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"not json\n{also not\n")
    res = _ingest(db, "--json", str(bad), str(tmp_path / "missing"))
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert [e["reason"] for e in out["errors"]] == ["malformed_json", "malformed_json", "not_found"]
    # One readable source among bad ones: exit 0.
    res = _ingest(db, "--json", str(bad), str(CSN_HF))
    assert res.exit_code == 0 and json.loads(res.stdout)["ingested"] == 6


def test_human_output_and_bad_format(tmp_path):
    db = tmp_path / "cli.duckdb"
    res = _ingest(db, str(CSN_HF))
    assert res.exit_code == 0 and "ingested" in res.output
    res = _ingest(db, "--format", "xml", str(CSN_HF))
    assert res.exit_code == 1 and "Unknown format" in res.output and "Traceback" not in res.output
