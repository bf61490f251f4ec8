"""The Map page through Streamlit's AppTest: build a map from the page, pick clusters, store a selection."""
from __future__ import annotations

import os
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.store import open_store
from tests.core.test_embed import stdlib_snippets
from tests.core.test_maps import make_mapped_store

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "2_Map.py")


def _db() -> Path:
    return Path(os.environ["SHOAL_DB"])


def test_map_page_cluster_selection_is_stored():
    with open_store(_db()) as s:
        map_id = make_mapped_store(s)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart"), "the map is drawn"
    assert next(s for s in at.selectbox if s.label == "Map").value == map_id
    at.multiselect(key="map.clusters").set_value([0, 2])
    at.number_input(key="map.budget").set_value(30)
    at.text_input(key="map.sel_name").input("apptest pick")
    next(b for b in at.button if b.label == "Select").click()
    at.run()
    assert not at.exception, at.exception
    assert any("Saved selection" in m.value for m in at.success)
    row = at.table[-1].value  # the coverage table, indexed by method
    assert list(row.index)[:2] == ["kcenter (this selection)", "random"]
    assert row.loc["kcenter (this selection)", "max distance"] < row.loc["random", "max distance"]
    with open_store(_db()) as s:
        sel = s.one("SELECT * FROM selections WHERE name = 'apptest pick'")
        assert sel["n_items"] == 30 and sel["n_candidates"] == 80
        clusters = {r[0] for r in s.execute(
            "SELECT p.cluster FROM selection_items i JOIN map_points p ON p.snippet_id = i.snippet_id "
            "AND p.map_id = ? WHERE i.selection_id = ?", [map_id, sel["id"]]).fetchall()}
        assert clusters <= {0, 2}
    # colour by selection: a "selected" trace is drawn
    at.radio(key="map.colour").set_value("selection").run()
    assert not at.exception


def test_map_page_builds_map_in_background():
    with open_store(_db()) as s:
        s.insert_df("snippets", stdlib_snippets(30))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("No map yet" in m.value for m in at.info)
    at.number_input(key="map.n_clusters").set_value(3)
    next(b for b in at.button if b.label == "Embed and build map").click()
    at.run()
    deadline = time.time() + 240
    while time.time() < deadline and not at.get("plotly_chart"):
        time.sleep(2)
        at.run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart"), [e.value for e in at.error]
    with open_store(_db()) as s:
        assert s.scalar("SELECT n_clusters FROM maps") == 3
        assert s.scalar("SELECT count(*) FROM map_points") == 30
