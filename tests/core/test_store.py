import multiprocessing as mp
import subprocess
import sys
import textwrap

import pytest

from core.errors import DatabaseBusy
from core.store import MIGRATIONS, open_store


def test_migrations_recorded_once(tmp_path):
    path = tmp_path / "a.duckdb"
    with open_store(path) as s:
        names = [r["name"] for r in s.rows("SELECT name FROM _migrations ORDER BY name")]
        assert names == [m[0] for m in MIGRATIONS]
    with open_store(path) as s:  # reopening applies nothing twice
        assert s.scalar("SELECT count(*) FROM _migrations") == len(MIGRATIONS)
        assert s.table_counts()["snippets"] == 0


def test_ui_state_and_audit_roundtrip(store):
    store.set_ui_state("review.position", {"id": 3})
    store.set_ui_state("review.position", {"id": 4})
    assert store.get_ui_state("review.position") == {"id": 4}
    assert store.get_ui_state("missing", 7) == 7
    store.audit("accept", "generation", 5, before=None, after={"verdict": "accepted"}, actor="ann")
    row = store.one("SELECT * FROM audit_log")
    assert row["actor"] == "ann" and row["entity_id"] == "5"


def test_transaction_rolls_back(store):
    with pytest.raises(RuntimeError):
        with store.transaction() as cur:
            cur.execute("INSERT INTO ui_state(key, value) VALUES ('k', '1')")
            raise RuntimeError("boom")
    assert store.scalar("SELECT count(*) FROM ui_state") == 0


def test_second_process_gets_clear_busy_message(tmp_path):
    path = tmp_path / "busy.duckdb"
    with open_store(path):
        code = textwrap.dedent(f"""
            from core.store import open_store
            from core.errors import DatabaseBusy
            try:
                open_store({str(path)!r})
            except DatabaseBusy as e:
                print("BUSY:", e)
        """)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "BUSY:" in out.stdout, out.stderr
    assert str(path.resolve()) in out.stdout
    assert "PID" in out.stdout
    assert "Traceback" not in out.stderr
