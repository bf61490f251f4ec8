"""In a real browser: the map renders, two clusters are picked, k-center picks are stored and highlighted."""
from __future__ import annotations

import re

import pytest

from core.store import open_store
from tests.core.test_maps import make_mapped_store
from tests.e2e.conftest import screenshot, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_pick_two_clusters_and_select_by_kcenter(page, app_server, tmp_path):
    db = tmp_path / "map.duckdb"
    with open_store(db) as s:
        map_id = make_mapped_store(s)
        labels = dict(s.execute("SELECT cluster, label FROM clusters WHERE map_id = ?", [map_id]).fetchall())
    srv = app_server(db)
    page.goto(srv.url + "/Map")
    wait_for_app(page)
    page.wait_for_selector(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas", timeout=60_000)
    assert page.get_by_text(f"0: {labels[0]}").first.is_visible()  # cluster names in the legend

    ms = page.get_by_test_id("stMultiSelect").filter(has_text="Clusters")
    for c in (0, 1):
        ms.locator("input").click()
        page.keyboard.press("ArrowDown")  # opens the option list
        page.get_by_role("option").filter(has_text=re.compile(rf"^{c}: ")).first.click()
        page.keyboard.press("Escape")
    budget = page.get_by_label("Budget")
    budget.fill("25")
    budget.press("Tab")
    name = page.get_by_label("Name")
    name.fill("browser pick")
    name.press("Tab")
    page.get_by_role("button", name="Select", exact=True).click()
    page.get_by_text("Saved selection").wait_for(timeout=60_000)
    wait_for_app(page)
    page.get_by_text("kcenter (this selection)").first.wait_for(timeout=30_000)
    page.get_by_text("selected", exact=True).first.wait_for()  # the highlight trace in the legend
    screenshot(page, "map_selection")
    srv.stop()

    with open_store(db) as s:
        sel = s.one("SELECT * FROM selections WHERE name = 'browser pick'")
        assert sel is not None and sel["method"] == "kcenter" and sel["n_items"] == 25
        assert sel["n_candidates"] == 80
        got = {r[0] for r in s.execute(
            "SELECT DISTINCT p.cluster FROM selection_items i JOIN map_points p ON p.snippet_id = i.snippet_id "
            "AND p.map_id = ? WHERE i.selection_id = ?", [map_id, sel["id"]]).fetchall()}
        assert got <= {0, 1}
