import subprocess
import sys
import textwrap

import pandas as pd
import pytest

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


def test_ui_state_saved_by_many_threads_at_once_keeps_every_key(store):
    """Two tabs of one user save the same key at the same moment: DuckDB refuses one of the writes
    (a conflict on the row, or the new key inserted twice); set_ui_state tries it again."""
    import threading
    errors: list = []

    def save(i):
        try:
            for k in range(20):
                store.set_ui_state(f"key{k}", {"thread": i, "k": k})
        except Exception as exc:                     # noqa: BLE001 (the test reports any)
            errors.append(repr(exc))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.scalar("SELECT count(*) FROM ui_state") == 20
    assert all(store.get_ui_state(f"key{k}")["k"] == k for k in range(20))


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


# --------------------------------------------------------------------------- frozen migrations

def test_migrations_are_frozen_sql_that_import_nothing():
    """Migrations are plain SQL files; opening a store loads nothing of core beyond store and errors."""
    from pathlib import Path

    import core.store as store_module
    folder = Path(store_module.__file__).with_name("migrations")
    files = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
    assert files and all(f.endswith(".sql") for f in files), files
    assert [m[0] for m in MIGRATIONS] == sorted(f[:-4] for f in files)
    assert [m[0] for m in MIGRATIONS][:3] == ["001_initial", "002_indexes", "003_review_views"]
    code = ("import sys\nfrom core.store import Store\nStore(':memory:')\n"
            "print(sorted(m for m in sys.modules if m == 'core' or m.startswith('core.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == "['core', 'core.errors', 'core.store']"


def test_migration_files_ship_as_package_data():
    import tomllib
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = data["core"]
    assert "migrations/*.sql" in patterns
    for pattern in patterns:   # no package data for files that do not exist
        assert list((root / "core").glob(pattern)), pattern


def _old_code_database(path):
    """A database as the code before frozen SQL files left it: the three migrations recorded under
    their names, a live review, and a review that the old undo deleted (only the audit log remembers
    its versions)."""
    import json

    import duckdb

    from core.store import migrate
    con = duckdb.connect(str(path))
    original = list(MIGRATIONS)
    try:
        MIGRATIONS[:] = original[:3]
        assert migrate(con) == ["001_initial", "002_indexes", "003_review_views"]
    finally:
        MIGRATIONS[:] = original
    con.execute("INSERT INTO snippets(id, kind, source, source_kind, language, code, n_chars) "
                "VALUES ('s1', 'function', 'x', 'dir', 'python', 'def f(): pass', 13)")
    con.execute("INSERT INTO generations(snippet_id, task, fields, parse_ok) VALUES "
                "('s1', 'code_generation', '{\"instruction\": \"a\", \"solution\": \"b\"}', TRUE), "
                "('s1', 'code_generation', '{\"instruction\": \"c\", \"solution\": \"d\"}', TRUE)")
    con.execute("INSERT INTO judgments(generation_id, overall, rules, parse_ok) VALUES (2, TRUE, '[]', TRUE)")
    con.execute("INSERT INTO reviews(generation_id, verdict, reviewer, version) VALUES (1, 'accepted', 'ann', 2)")
    for action, before, after in (("review.decide", None, {"verdict": "accepted", "version": 1}),
                                  ("review.decide", {"verdict": "accepted", "version": 1},
                                   {"verdict": "rejected", "version": 2}),
                                  ("review.undo", {"verdict": "rejected", "version": 2},
                                   {"verdict": "accepted", "version": 3}),
                                  ("review.undo", {"verdict": "accepted", "version": 3}, None)):
        con.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after) "
                    "VALUES ('ann', ?, 'review', '2', ?, ?)",
                    [action, None if before is None else json.dumps(before), None if after is None else json.dumps(after)])
    con.close()


def test_database_from_the_old_code_path_opens_and_keeps_its_reviews(tmp_path):
    from core import review as rv
    path = tmp_path / "old.duckdb"
    _old_code_database(path)
    with open_store(path) as s:
        names = [r["name"] for r in s.rows("SELECT name FROM _migrations ORDER BY name")]
        assert names == [m[0] for m in MIGRATIONS]
        assert s.rows("SELECT generation_id, verdict, reviewer, version FROM reviews") == [
            {"generation_id": 1, "verdict": "accepted", "reviewer": "ann", "version": 2}]
        assert rv.get_review(s, 2) is None and rv.current_version(s, 2) == 0
        tomb = s.one("SELECT verdict, version, undone_at FROM review_records WHERE generation_id = 2")
        assert tomb["verdict"] is None and tomb["version"] == 3 and tomb["undone_at"] is not None
        eff = {r["generation_id"]: r["effective_verdict"] for r in s.rows("SELECT * FROM review_effective")}
        assert eff == {1: "accepted", 2: "accepted"}
        # versions keep growing past everything the old audit log recorded
        assert rv.decide(s, 2, "rejected", reviewer="bob", expected_version=0)["version"] == 4
        assert rv.decide(s, 1, "rejected", reviewer="bob", expected_version=2)["version"] == 3
    with open_store(path) as s:   # reopening applies nothing twice
        assert s.scalar("SELECT count(*) FROM _migrations") == len(MIGRATIONS)
        assert rv.get_review(s, 2)["verdict"] == "rejected"


def test_reads_leave_no_open_result_that_blocks_register(store):
    """A one()/scalar() on the thread's cursor, then insert_df (register) on the same thread: DuckDB 2
    refuses register() while a fetchone() result is unfinished, which once failed a whole check run."""
    store.insert_df("audit_log", pd.DataFrame({"action": ["a"], "actor": ["x"]}))
    assert store.one("SELECT action FROM audit_log") == {"action": "a"}
    assert store.insert_df("audit_log", pd.DataFrame({"action": ["b"], "actor": ["x"]})) == 1
    assert store.scalar("SELECT count(*) FROM audit_log") == 2
    assert store.insert_df("audit_log", pd.DataFrame({"action": ["c"], "actor": ["x"]})) == 1
    assert store.scalar("SELECT count(*) FROM audit_log") == 3
