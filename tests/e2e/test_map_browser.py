"""In a real browser: the map renders, two clusters are picked, k-center picks are stored and highlighted."""
from __future__ import annotations

import re

import pytest

from core.store import open_store
from tests.core.test_maps import make_mapped_store
from tests.e2e.conftest import screenshot, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_map(page, srv) -> None:
    page.goto(srv.url + "/Map")
    wait_for_app(page)
    page.wait_for_selector(".js-plotly-plot .scatterlayer, .js-plotly-plot canvas", timeout=60_000)


def submit_selection(page, budget: int, name: str) -> None:
    """Fill the selection form's budget and name, press Select, wait for the saved message."""
    for label, value in (("Budget", str(budget)), ("Name", name)):
        box = page.get_by_label(label)
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Select", exact=True).click()
    page.get_by_text("Saved selection").wait_for(timeout=60_000)


def test_pick_two_clusters_and_select_by_kcenter(page, app_server, tmp_path):
    db = tmp_path / "map.duckdb"
    with open_store(db) as s:
        map_id = make_mapped_store(s)
        labels = dict(s.execute("SELECT cluster, label FROM clusters WHERE map_id = ?", [map_id]).fetchall())
    srv = app_server(db)
    open_map(page, srv)
    assert page.get_by_text(f"0: {labels[0]}").first.is_visible()  # cluster names in the legend

    ms = page.get_by_test_id("stMultiSelect").filter(has_text="Clusters")
    for c in (0, 1):
        ms.locator("input").click()
        page.keyboard.press("ArrowDown")  # opens the option list
        page.get_by_role("option").filter(has_text=re.compile(rf"^{c}: ")).first.click()
        page.keyboard.press("Escape")
    submit_selection(page, 25, "browser pick")
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


AXES = """() => { const gd = document.querySelector('.js-plotly-plot'); const L = gd._fullLayout;
  return {x: L.xaxis.range, y: L.yaxis.range}; }"""


def test_lasso_limits_the_candidates(page, app_server, tmp_path):
    db = tmp_path / "lasso.duckdb"
    with open_store(db) as s:
        map_id = make_mapped_store(s)
        pts = s.execute("SELECT snippet_id, x, y FROM map_points WHERE map_id = ?", [map_id]).fetchall()
    srv = app_server(db)
    open_map(page, srv)
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    axes = page.evaluate(AXES)
    # a rectangular lasso over the left 45% of the plot, 5%..95% of its height
    fx0, fx1, fy0, fy1 = 0.02, 0.45, 0.05, 0.95
    corners = [(fx0, fy0), (fx1, fy0), (fx1, fy1), (fx0, fy1), (fx0, fy0)]
    page.mouse.move(box["x"] + fx0 * box["width"], box["y"] + fy0 * box["height"])
    page.mouse.down()
    for fx, fy in corners[1:]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=8)
    page.mouse.up()
    info = page.get_by_text(re.compile(r"points in the lasso/box selection"))
    info.wait_for(timeout=30_000)
    wait_for_app(page)
    shown = int(re.match(r"([\d,]+) points", info.inner_text()).group(1).replace(",", ""))

    def data(frac, rng, flip=False):
        return rng[0] + ((1 - frac) if flip else frac) * (rng[1] - rng[0])
    xa, xb = data(fx0, axes["x"]), data(fx1, axes["x"])
    ya, yb = sorted((data(fy0, axes["y"], flip=True), data(fy1, axes["y"], flip=True)))
    inside = {sid for sid, x, y in pts if xa <= x <= xb and ya <= y <= yb}
    assert 0 < len(inside) < len(pts) and shown == len(inside)

    submit_selection(page, 5, "lasso pick")
    srv.stop()
    with open_store(db) as s:
        sel = s.one("SELECT * FROM selections WHERE name = 'lasso pick'")
        assert sel["n_candidates"] == len(inside) and sel["n_items"] == 5
        picked = {r[0] for r in s.execute("SELECT snippet_id FROM selection_items WHERE selection_id = ?",
                                          [sel["id"]]).fetchall()}
    assert picked <= inside
