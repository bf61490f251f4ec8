"""The Map page through Streamlit's AppTest: build a map from the page, pick clusters, store a selection,
and the chart's events (a click, a lasso, a cluster click) as the map component sends them."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.maps.build import map_points
from core.maps.lasso import PointIndex
from core.store import open_store
from tests.support.maps import make_mapped_store, make_mapped_store_with_seeds
from tests.support.snippets import stdlib_snippets

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "2_Map.py")


def _db() -> Path:
    return Path(os.environ["SHOAL_DB"])


def _chart(at: AppTest):
    """The map component on the page (AppTest sees it as an unknown element)."""
    found = at.get("component_instance")
    assert found, "the map is drawn"
    return found[0]


def _drawn_points(at: AppTest) -> int:
    args = {a.key: a.bytes for a in _chart(at).proto.special_args}
    return len(args["xy"]) // 8     # float32 x then y per point


def _send(at: AppTest, map_id: int, event: dict) -> AppTest:
    """What the component does in a browser: set its value, then the page reruns."""
    at.session_state[f"map.chart.{map_id}"] = {**event, "t": time.time()}
    return at.run()


def _draw_order(map_id: int) -> np.ndarray:
    """Draw position -> row, as the page builds it for colour-by-cluster (grouped by cluster, stable)."""
    with open_store(_db()) as s:
        pts = map_points(s, map_id)
    return pts, np.argsort(pts["cluster"].to_numpy(), kind="stable")


def test_map_page_cluster_selection_is_stored():
    with open_store(_db()) as s:
        map_id = make_mapped_store(s)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert _drawn_points(at) == 120
    assert next(s for s in at.selectbox if s.label == "Map").value == map_id
    at.multiselect(key="map.clusters").set_value([0, 2])
    at.number_input(key="map.budget").set_value(30)
    at.text_input(key="map.sel_name").input("apptest pick")
    next(b for b in at.button if b.label == "Select").click()
    at.run()
    assert not at.exception, at.exception
    assert any("Saved selection" in m.value for m in at.success)
    row = at.table[0].value  # the coverage table, indexed by method
    assert list(row.index)[:2] == ["kcenter (this selection)", "random"]
    assert row.loc["kcenter (this selection)", "max distance"] < row.loc["random", "max distance"]
    spread = at.table[1].value   # several random draws: mean (min–max)
    assert list(spread.index)[:2] == ["this selection", "random × 5 draws"]
    assert "–" in spread.loc["random × 5 draws", "max distance"]
    assert any("random draws" in c.value for c in at.caption)
    with open_store(_db()) as s:
        sel = s.one("SELECT * FROM selections WHERE name = 'apptest pick'")
        assert sel["n_items"] == 30 and sel["n_candidates"] == 80
        clusters = {r[0] for r in s.execute(
            "SELECT p.cluster FROM selection_items i JOIN map_points p ON p.snippet_id = i.snippet_id "
            "AND p.map_id = ? WHERE i.selection_id = ?", [map_id, sel["id"]]).fetchall()}
        assert clusters <= {0, 2}
    for colour in ("selection", "review status", "kind", "language"):
        at.radio(key="map.colour").set_value(colour).run()
        assert not at.exception, (colour, at.exception)
        assert _drawn_points(at) == 120


def test_a_selection_stored_without_its_spread_offers_to_measure_it_once():
    """A selection made before the spread was stored with it (here: without baselines) has no spread: the
    page offers to measure it, then shows and keeps it; a lasso pool it cannot rebuild says it is not recorded."""
    from core.select.run import select
    from core.select.stored import stored_spread
    with open_store(_db()) as s:
        map_id = make_mapped_store(s)
        old = select(s, name="old pick", budget=10, map_id=map_id, clusters=[0, 1], baselines=False).id
        some = s.df("SELECT snippet_id FROM map_points WHERE map_id = ? LIMIT 40", [map_id])["snippet_id"].tolist()
        lasso = select(s, name="old lasso", budget=5, map_id=map_id, ids=some, baselines=False).id
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["map.highlight"] = old
    at.run()
    assert not at.exception, at.exception
    assert len(at.table) == 1                                       # the coverage table, no spread yet
    next(b for b in at.button if b.label == "Measure 5 random draws").click()
    at.run()
    assert not at.exception, at.exception
    assert list(at.table[1].value.index)[:2] == ["this selection", "random × 5 draws"]
    with open_store(_db()) as s:
        assert stored_spread(s, old)["draws"] == 5
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.session_state["map.highlight"] = lasso
    at.run()
    assert not at.exception, at.exception
    assert len(at.table) == 1 and not any(b.label == "Measure 5 random draws" for b in at.button)
    assert any("not recorded" in c.value for c in at.caption)


def test_click_event_shows_the_code_and_hover_carries_a_preview():
    with open_store(_db()) as s:
        map_id = make_mapped_store(s)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.code and any("Click a point" in i.value for i in at.info)
    pts, order = _draw_order(map_id)
    hover = _chart(at).proto.json_args
    assert "open_socket_connection" in hover and "def " in hover   # small map: name + first lines per point
    _send(at, map_id, {"kind": "click", "pos": 5})
    assert not at.exception, at.exception
    name = pts["func_name"].iloc[order[5]]
    assert at.code and f"def {name}(" in at.code[0].value
    assert any(name in m.value for m in at.markdown)


def test_find_snippet_by_name_shows_its_code():
    with open_store(_db()) as s:
        map_id = make_mapped_store(s)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.text_input(key=f"map.find.{map_id}").input("multiply_matrix_rows_7").run()
    box = at.selectbox(key=f"map.found.{map_id}")
    assert len(box.options) == 2
    box.select_index(1).run()
    assert not at.exception, at.exception
    assert at.code and "def multiply_matrix_rows_7(" in at.code[0].value


def test_lasso_event_limits_candidates_to_the_points_inside():
    with open_store(_db()) as s:
        map_id = make_mapped_store(s)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    pts, _ = _draw_order(map_id)
    x, y = pts["x"].to_numpy(), pts["y"].to_numpy()
    cx, cy, r = float(np.median(x)), float(np.median(y)), float(np.ptp(x)) * 0.6
    ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    poly_x, poly_y = (cx + r * np.cos(ang)).tolist(), (cy + r * np.sin(ang)).tolist()
    inside = set(pts["snippet_id"].iloc[PointIndex(x, y).in_polygon(poly_x, poly_y)])
    assert 0 < len(inside) < 120
    _send(at, map_id, {"kind": "lasso", "x": poly_x, "y": poly_y})
    assert any(f"{len(inside)} points in the lasso selection" in i.value for i in at.info)
    at.number_input(key="map.budget").set_value(5)
    at.text_input(key="map.sel_name").input("lasso pick")
    next(b for b in at.button if b.label == "Select").click()
    at.run()
    assert not at.exception, at.exception
    with open_store(_db()) as s:
        sel = s.one("SELECT * FROM selections WHERE name = 'lasso pick'")
        picked = {r[0] for r in s.execute("SELECT snippet_id FROM selection_items WHERE selection_id = ?",
                                          [sel["id"]]).fetchall()}
    assert sel["n_candidates"] == len(inside) and picked <= inside
    _send(at, map_id, {"kind": "clear"})
    assert not any("points in the lasso" in i.value for i in at.info)


def test_cluster_click_toggles_the_cluster_choice():
    with open_store(_db()) as s:
        map_id = make_mapped_store(s)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    _send(at, map_id, {"kind": "cluster", "cluster": 2})
    assert at.multiselect(key="map.clusters").value == [2]
    _send(at, map_id, {"kind": "cluster", "cluster": 0})
    assert at.multiselect(key="map.clusters").value == [0, 2]
    at.run()   # the same event again (a plain rerun) changes nothing
    assert at.multiselect(key="map.clusters").value == [0, 2]
    _send(at, map_id, {"kind": "cluster", "cluster": 2})
    assert at.multiselect(key="map.clusters").value == [0]
    labels = _chart(at).proto.json_args
    assert '"cluster": 1' in labels or '"cluster":1' in labels   # cluster names are written on the map


def test_kind_filter_keeps_seed_fragments_out_of_kcenter():
    with open_store(_db()) as s:
        make_mapped_store_with_seeds(s)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert at.multiselect(key="map.kinds").value == ["function"]
    assert at.multiselect(key="map.kinds").options == ["function", "seed"]
    at.number_input(key="map.budget").set_value(20)
    at.text_input(key="map.sel_name").input("functions only")
    next(b for b in at.button if b.label == "Select").click()
    at.run()
    assert not at.exception, at.exception
    at.multiselect(key="map.kinds").set_value(["function", "seed"])
    at.text_input(key="map.sel_name").input("both kinds")
    next(b for b in at.button if b.label == "Select").click()
    at.run()
    assert not at.exception, at.exception
    with open_store(_db()) as s:
        def kinds(name):
            return s.execute("SELECT s.kind, count(*) FROM selections x JOIN selection_items i ON i.selection_id = x.id "
                             "JOIN snippets s ON s.id = i.snippet_id WHERE x.name = ? GROUP BY 1", [name]).fetchall()
        assert dict(kinds("functions only")) == {"function": 20}
        assert s.scalar("SELECT n_candidates FROM selections WHERE name = 'functions only'") == 120
        assert dict(kinds("both kinds")).get("seed", 0) >= 10   # farthest-point takes the outliers first


def test_palette_and_legend_labels():
    from ui.palettes import CLUSTER_PALETTE, NOISE, min_colour_distance
    assert len(CLUSTER_PALETTE) == 40 == len(set(CLUSTER_PALETTE))
    assert min_colour_distance(CLUSTER_PALETTE) >= 25
    assert min_colour_distance(CLUSTER_PALETTE + [NOISE]) >= 20
    import pandas as pd

    from ui.map.chart import colour_groups
    pts = pd.DataFrame({"cluster": np.arange(40).repeat(2), "x": 0.0, "y": 0.0})
    labels = {c: "a very long cluster label · with many words · and more" for c in range(40)}
    codes, groups = colour_groups(pts, "cluster", np.zeros(80, bool), labels)
    assert len(groups) == 40 and all(len(g["name"]) <= 34 for g in groups)
    assert len({g["colour"] for g in groups}) == 40 and codes.tolist() == np.arange(40).repeat(2).tolist()


def _bar(at: AppTest) -> str:
    return " ".join(str(p.proto.text) for p in at.get("progress"))


def _build_until_drawn(at: AppTest) -> None:
    """Press "Embed and build map" (3 clusters) and rerun the page until it draws a map."""
    at.number_input(key="map.n_clusters").set_value(3)
    next(b for b in at.button if b.label == "Embed and build map").click()
    at.run()
    deadline = time.time() + 240
    while time.time() < deadline and not at.get("component_instance"):
        time.sleep(1)
        at.run()
    assert not at.exception, at.exception


def test_map_page_builds_map_in_background():
    with open_store(_db()) as s:
        s.insert_df("snippets", stdlib_snippets(30))
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert any("No map yet" in m.value for m in at.info)
    _build_until_drawn(at)
    assert _drawn_points(at) == 30, [e.value for e in at.error]
    with open_store(_db()) as s:
        assert s.scalar("SELECT n_clusters FROM maps") == 3
        assert s.scalar("SELECT count(*) FROM map_points") == 30


def test_big_map_draws_a_sample_over_a_density_image_and_every_point_in_a_zoomed_view(monkeypatch):
    import base64
    import io

    import pandas as pd
    from PIL import Image

    from ui.map import chart as map_chart
    monkeypatch.setattr(map_chart, "DRAW_ALL_UP_TO", 50)
    monkeypatch.setattr(map_chart, "OVERVIEW_SAMPLE", 20)
    rng = np.random.default_rng(0)
    pts = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300), "cluster": rng.integers(3, size=300)})
    codes, groups = map_chart.colour_groups(pts, "cluster", np.zeros(300, bool), {0: "a", 1: "b", 2: "c"})
    rows = map_chart.drawn_rows(300, None)
    assert len(rows) == 20 and np.array_equal(rows, map_chart.drawn_rows(300, None))   # seeded
    index = PointIndex(pts["x"], pts["y"])
    in_view = index.in_box([-0.3, 0.3], [-0.3, 0.3])
    assert 0 < len(in_view) <= 50 and np.array_equal(map_chart.drawn_rows(300, in_view), in_view)
    png = map_chart.density_image(pts["x"].to_numpy(), pts["y"].to_numpy(), codes, [g["colour"] for g in groups],
                                  (-4, 4, -4, 4), width=64, height=32)
    img = Image.open(io.BytesIO(base64.b64decode(png.split(",", 1)[1])))
    assert img.size == (64, 32) and np.asarray(img)[..., 3].astype(bool).sum() > 50
    d = map_chart.drawing(pts, codes, groups, data_key="k", chosen_mask=np.zeros(300, bool), labels=[],
                          rows=in_view, overview=png)
    assert len(d.args["xy"]) == 8 * len(in_view) and d.args["n_total"] == 300 and d.args["overview"] == png
    assert sorted(d.order.tolist()) == sorted(in_view.tolist())
    state, _ = map_chart.apply_event(map_chart.ChartState(), {"kind": "view", "x": [-0.3, 0.3], "y": [-0.3, 0.3],
                                                              "t": 1}, d, index)
    assert state.view == ((-0.3, 0.3), (-0.3, 0.3))
    state, _ = map_chart.apply_event(state, {"kind": "view", "reset": True, "t": 2}, d, index)
    assert state.view is None


def test_a_big_corpus_shows_a_first_look_map_before_the_full_one(monkeypatch):
    """Embedding every snippet of a big corpus takes minutes on a CPU: the page shows a map of a sample
    as soon as it is built, while the rest is embedded, then the full map."""
    import threading

    import core.embed.run as embed
    import core.maps.start as bw

    with open_store(_db()) as s:
        s.insert_df("snippets", stdlib_snippets(60))
    monkeypatch.setattr(bw, "FIRST_MAP_SNIPPETS", 20)
    release, real = threading.Event(), embed.embed_corpus

    def held_second_pass(*args, **kwargs):
        if kwargs.get("snippet_ids") is None:      # the second pass waits until the first look was seen
            assert release.wait(240)
        return real(*args, **kwargs)

    monkeypatch.setattr(embed, "embed_corpus", held_second_pass)
    try:
        at = AppTest.from_file(PAGE, default_timeout=120).run()
        _build_until_drawn(at)
        assert _drawn_points(at) == 20
        deadline = time.time() + 120       # the first look is stored just before its stage ends
        while time.time() < deadline and "the map below is a first look" not in _bar(at):
            time.sleep(0.5)
            at.run()
        assert "the map below is a first look at a sample; the full map follows" in _bar(at), _bar(at)
        assert _drawn_points(at) == 20
    finally:
        release.set()
    deadline = time.time() + 240
    while time.time() < deadline and _drawn_points(at) != 60:
        time.sleep(1)
        at.run()
    with open_store(_db()) as s:
        maps = s.rows("SELECT name, n_points FROM maps ORDER BY id")
        task = s.rows("SELECT status, stage, message, error FROM background_tasks ORDER BY id DESC LIMIT 1")
    assert _drawn_points(at) == 60, (maps, task, at.session_state["map.map_id"], _bar(at),
                                     [e.value for e in at.error], [w.value for w in at.warning])
    assert [m["n_points"] for m in maps] == [20, 60]
    assert maps[0]["name"] == "first look (20 sampled snippets)"


def test_a_map_that_misses_new_snippets_says_so_above_the_selection():
    from tests.support.snippets import add_snippets
    with open_store(_db()) as s:
        make_mapped_store(s)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert not any("were added since it was built" in w.value for w in at.warning)
    with open_store(_db()) as s:
        add_snippets(s, 7)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert any("The map holds 120 snippets; 7 were added since it was built" in w.value for w in at.warning)
