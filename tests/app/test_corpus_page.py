"""The Corpus page in Streamlit's AppTest: counts, rejects, search + viewer, ingest from a path."""
from __future__ import annotations

import json
import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.background import wait_for_tasks
from core.ingest import ingest_sources
from core.store import open_store

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "pages" / "1_Corpus.py")
DATA = ROOT / "tests" / "data" / "ingest"


def _prepare(sources: list[str]) -> None:
    with open_store(os.environ["SHOAL_DB"]) as s:
        ingest_sources(s, sources)


def _wait_for_ingest(timeout: float = 60) -> None:
    assert wait_for_tasks(timeout), "the ingest thread did not finish"


def test_empty_database_offers_sources():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("No code yet" in i.value for i in at.info)
    assert at.button(key="corpus.demo") is not None


def test_counts_rejects_search_and_viewer():
    bad = Path(os.environ["SHOAL_DB"]).parent / "bad.jsonl"
    bad.write_bytes(b'{"code": 1, "language": "python"}\nnot json\n')
    _prepare([str(DATA / "codesearchnet" / "original"), str(DATA / "multilang_repo"), str(bad)])
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    with open_store(os.environ["SHOAL_DB"]) as s:  # same process: DuckDB shares the open file
        n = s.scalar("SELECT count(*) FROM snippets")
        n_lang = s.scalar("SELECT count(DISTINCT language) FROM snippets")
    assert metrics["Snippets"] == f"{n:,}" and metrics["Languages"] == str(n_lang) == "9"
    assert int(metrics["Rejected"]) >= 2
    texts = " ".join(str(df.value.to_dict()) for df in at.dataframe)
    assert "wrong_type" in texts and "malformed_json" in texts and "too_short" in texts
    assert len(at.get("plotly_chart")) == 2

    at.text_input(key="corpus.query").input("transpose").run()
    assert not at.exception, at.exception
    code = at.code[0]
    assert "fn transpose(&self) -> Matrix" in code.value and code.language == "rust"
    assert any("Matrix.transpose" in t.value for t in at.text)


def test_ingest_from_a_server_path_runs_in_the_background():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="corpus.path").input(str(DATA / "codesearchnet" / "hf_code_search_net.jsonl"))
    at.button(key="corpus.ingest_path").click().run()
    assert not at.exception, at.exception
    _wait_for_ingest()
    at.run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["Snippets"] == "6"
    assert any("6 new snippets" in s.value for s in at.success)


def test_keep_test_code_option_reaches_the_ingest(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "lib.py").write_text("def library_total(values):\n    return sum(v * v for v in values) + len(values)\n")
    (repo / "tests" / "test_lib.py").write_text(
        "def test_library_total_works():\n    assert library_total([1, 2, 3]) == 14 + 3, 'wrong total'\n")
    monkeypatch.setenv("SHOAL_DATA_ROOTS", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.text_input(key="corpus.path").input(str(repo))
    at.button(key="corpus.ingest_path").click().run()
    _wait_for_ingest()
    at.run()
    assert not at.exception, at.exception
    assert any("1 test files left out as test code" in s.value for s in at.success)
    at.checkbox(key="corpus.keep_tests").check().run()
    at.button(key="corpus.ingest_path").click().run()
    _wait_for_ingest()
    with open_store(os.environ["SHOAL_DB"]) as s:
        names = {r[0] for r in s.execute("SELECT func_name FROM snippets").fetchall()}
        params = [json.loads(p[0]) for p in s.execute("SELECT params FROM ingests ORDER BY id").fetchall()]
    assert names == {"library_total", "test_library_total_works"}
    assert [p["keep_tests"] for p in params] == [False, True]
