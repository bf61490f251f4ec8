"""The home page in Streamlit's AppTest: stage counts and the next step follow the database."""
from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.ingest import ingest_sources
from core.store import open_store

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def test_empty_database_points_to_the_corpus_page():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric} == {s: "0" for s in
                                                     ("Corpus", "Map", "Selection", "Generate", "Review", "Export")}
    assert "Add a corpus" in at.info[0].value


def test_ingested_corpus_is_counted_and_the_map_is_next():
    with open_store(os.environ["SHOAL_DB"]) as s:
        n = ingest_sources(s, [str(ROOT / "tests" / "data" / "ingest" / "multilang_repo")]).ingested
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert n > 0 and metrics["Corpus"] == f"{n:,}" and metrics["Map"] == "0"
    assert "Embed the corpus" in at.info[0].value
    assert [c.value for c in at.caption][:2] == ["✅ done", "⬜ to do"]
