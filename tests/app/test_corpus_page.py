"""The Corpus page in Streamlit's AppTest: counts, rejects, search + viewer, ingest from a path."""
from __future__ import annotations

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
