"""In a real browser: the map component renders, a click in the default (lasso) mode shows the code,
a cluster is selected by clicking its legend entry (its name written on the map takes no click: the
click reaches the point under it), a lasso selects exactly the
points inside it, and the kind filter keeps seed fragments out of a k-center pick."""
from __future__ import annotations

import re

import numpy as np
import pytest

from core.store import open_store
from tests.support.browser import MAP_FRAME, screenshot, wait_for_app
from tests.support.maps import crossings_reference, make_mapped_store, make_mapped_store_with_seeds

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TO_PIXEL = """([x, y]) => { const L = document.getElementById('plot')._fullLayout;
  return [L._size.l + L.xaxis.l2p(x), L._size.t + L.yaxis.l2p(y)]; }"""
TO_DATA = """([px, py]) => { const L = document.getElementById('plot')._fullLayout;
  return [L.xaxis.p2l(px - L._size.l), L.yaxis.p2l(py - L._size.t)]; }"""
PLOTLY_SELECTED = """() => document.getElementById('plot').data
  .filter(t => !(t.meta && t.meta.overlay)).reduce((n, t) => n + (t.selectedpoints ? t.selectedpoints.length : 0), 0)"""


def open_map(page, srv, n_points: int):
    """Go to the Map page; return (the map's frame, the frame's box on the page)."""
    page.set_viewport_size({"width": 1400, "height": 1700})
    page.goto(srv.url + "/Map")
    wait_for_app(page)
    page.frame_locator(MAP_FRAME).locator(f"body[data-points='{n_points}']").wait_for(timeout=120_000)
    frame = next(f for f in page.frames if "shoal_map" in f.url)
    return frame, page.locator(MAP_FRAME).bounding_box()


def submit_selection(page, budget: int, name: str) -> None:
    """Fill the selection form's budget and name, press Select, wait for the saved message."""
    for label, value in (("Budget", str(budget)), ("Name", name)):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Tab")
    page.get_by_role("button", name="Select", exact=True).click()
    page.get_by_text("Saved selection").wait_for(timeout=90_000)


def _loneliest(pts: list) -> tuple:
    """The point farthest from its nearest neighbour (a click on it cannot hit another one)."""
    xy = np.array([(x, y) for _, x, y, *_ in pts])
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return pts[int(d.min(axis=1).argmax())]


def test_click_in_default_mode_shows_code_and_clusters_are_clickable(page, app_server, tmp_path):
    db = tmp_path / "map.duckdb"
    with open_store(db) as s:
        map_id = make_mapped_store(s)
        labels = dict(s.execute("SELECT cluster, label FROM clusters WHERE map_id = ?", [map_id]).fetchall())
        pts = s.execute("SELECT p.snippet_id, p.x, p.y, s.func_name FROM map_points p JOIN snippets s "
                        "ON s.id = p.snippet_id WHERE map_id = ?", [map_id]).fetchall()
    srv = app_server(db)
    frame, box = open_map(page, srv, 120)
    assert frame.evaluate("() => document.getElementById('plot')._fullLayout.dragmode") == "lasso"
    _, x, y, name = _loneliest(pts)
    px, py = frame.evaluate(TO_PIXEL, [x, y])
    page.mouse.move(box["x"] + px, box["y"] + py)
    frame.locator(".hovertext").filter(has_text=name).wait_for(timeout=10_000)   # hover: name + first lines
    assert "def " in frame.locator(".hovertext").first.text_content()
    page.mouse.click(box["x"] + px, box["y"] + py)
    page.get_by_test_id("stCode").filter(has_text=f"def {name}(").wait_for(timeout=60_000)

    # a cluster by its legend entry; its name written on the map is no button (a click there is a
    # click on the map: a person aiming at a point under a name must not change the filter)
    frame.locator(".legend .traces").nth(1).locator(".legendtoggle").click()
    wait_for_app(page)
    label = frame.locator(".annotation").filter(has_text=re.compile(r"^0: ")).first.bounding_box()
    lx, ly = label["x"] + label["width"] / 2, label["y"] + label["height"] / 2
    hit = frame.evaluate("([x, y]) => !!document.elementFromPoint(x, y).closest('.annotation')",
                         [lx - box["x"], ly - box["y"]])
    assert not hit, "a cluster name on the map takes the click instead of the point under it"
    page.mouse.click(lx, ly)
    wait_for_app(page)
    frame.locator(".legend .traces").nth(2).locator(".legendtoggle").click()
    wait_for_app(page)
    ms = page.get_by_test_id("stMultiSelect").filter(has_text="Clusters")
    for c in (1, 2):
        ms.get_by_text(re.compile(rf"^{c}: {re.escape(labels[c][:20])}")).wait_for(timeout=30_000)
    assert ms.get_by_text(re.compile(r"^0: ")).count() == 0, "the click on cluster 0's name picked it"
    submit_selection(page, 25, "clicked clusters")
    wait_for_app(page)
    page.get_by_text("random × 5 draws").first.wait_for(timeout=30_000)
    screenshot(page, "map_click_and_clusters")
    srv.stop()
    with open_store(db) as s:
        sel = s.one("SELECT * FROM selections WHERE name = 'clicked clusters'")
        assert sel["n_items"] == 25 and sel["n_candidates"] == 80
        got = {r[0] for r in s.execute(
            "SELECT DISTINCT p.cluster FROM selection_items i JOIN map_points p ON p.snippet_id = i.snippet_id "
            "AND p.map_id = ? WHERE i.selection_id = ?", [map_id, sel["id"]]).fetchall()}
        assert got <= {1, 2}


def test_lasso_selects_exactly_the_points_inside(page, app_server, tmp_path):
    db = tmp_path / "lasso.duckdb"
    with open_store(db) as s:
        map_id = make_mapped_store(s)
        pts = s.execute("SELECT snippet_id, x, y FROM map_points WHERE map_id = ?", [map_id]).fetchall()
    srv = app_server(db)
    frame, box = open_map(page, srv, 120)
    size = frame.evaluate("() => document.getElementById('plot')._fullLayout._size")
    # a lasso shaped like an irregular pentagon over the middle of the plot area
    fr = [(0.15, 0.10), (0.62, 0.05), (0.70, 0.55), (0.40, 0.95), (0.08, 0.60)]
    pix = [(size["l"] + fx * size["w"], size["t"] + fy * size["h"]) for fx, fy in fr]
    page.mouse.move(box["x"] + pix[0][0], box["y"] + pix[0][1])
    page.mouse.down()
    for qx, qy in pix[1:] + pix[:1]:
        page.mouse.move(box["x"] + qx, box["y"] + qy, steps=10)
    page.mouse.up()
    info = page.get_by_text(re.compile(r"points in the lasso selection"))
    info.wait_for(timeout=60_000)
    wait_for_app(page)
    shown = int(re.match(r"([\d,]+) points", info.inner_text()).group(1).replace(",", ""))
    poly = [frame.evaluate(TO_DATA, [qx, qy]) for qx, qy in pix]
    xs, ys = np.array([p[1] for p in pts]), np.array([p[2] for p in pts])
    inside_rows = crossings_reference(xs, ys, [p[0] for p in poly], [p[1] for p in poly])
    inside = {pts[i][0] for i in inside_rows}
    assert 0 < len(inside) < len(pts)
    assert shown == len(inside) == frame.evaluate(PLOTLY_SELECTED)   # ours = reference = plotly's own
    submit_selection(page, 5, "lasso pick")
    srv.stop()
    with open_store(db) as s:
        sel = s.one("SELECT * FROM selections WHERE name = 'lasso pick'")
        assert sel["n_candidates"] == len(inside) and sel["n_items"] == 5
        picked = {r[0] for r in s.execute("SELECT snippet_id FROM selection_items WHERE selection_id = ?",
                                          [sel["id"]]).fetchall()}
    assert picked <= inside


def test_kind_filter_keeps_seeds_out_of_kcenter(page, app_server, tmp_path):
    db = tmp_path / "kinds.duckdb"
    with open_store(db) as s:
        make_mapped_store_with_seeds(s)
    srv = app_server(db)
    open_map(page, srv, 132)
    kinds = page.get_by_test_id("stMultiSelect").filter(has_text="Snippet kinds")
    assert kinds.get_by_text("function", exact=True).is_visible() and not kinds.get_by_text("seed").count()
    submit_selection(page, 20, "functions only")
    srv.stop()
    with open_store(db) as s:
        rows = dict(s.execute("SELECT s.kind, count(*) FROM selections x JOIN selection_items i "
                              "ON i.selection_id = x.id JOIN snippets s ON s.id = i.snippet_id "
                              "WHERE x.name = 'functions only' GROUP BY 1").fetchall())
        assert rows == {"function": 20}
        assert s.scalar("SELECT method FROM selections WHERE name = 'functions only'") == "kcenter"


def test_a_long_legend_goes_below_the_map_and_leaves_it_its_width(page, app_server, tmp_path):
    """40 clusters listed beside the plot left the map a ~230 px strip: past 12 groups the legend is
    drawn in rows under the map, which keeps nearly the frame's whole width; a short one stays beside."""
    sizes = {}
    for n_clusters in (3, 40):
        db = tmp_path / f"legend-{n_clusters}.duckdb"
        with open_store(db) as s:
            make_mapped_store(s, n_clusters=n_clusters)
        srv = app_server(db)
        frame, box = open_map(page, srv, 120)
        size = frame.evaluate("() => document.getElementById('plot')._fullLayout._size")
        orient = frame.evaluate("() => document.getElementById('plot')._fullLayout.legend.orientation")
        groups = frame.locator(".legend .traces").count()
        sizes[n_clusters] = (size["w"] / box["width"], orient, groups)
    assert sizes[3][1] == "v" and sizes[40][1] == "h", sizes
    assert sizes[40][2] >= 40 and sizes[40][0] > 0.9, sizes      # the map keeps its width
    assert sizes[40][0] > sizes[3][0], sizes
