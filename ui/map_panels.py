"""The Map page's parts besides the chart: the code of the point shown, the snippet finder,
the kind filter's choices, and the coverage table with the spread of random draws."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import streamlit as st

from core.coverage_spread import coverage_spread, gain_verdict
from core.errors import ShoalError
from core.maps import snippet_preview
from core.select import compare_coverage
from core.snippets import get_snippet
from core.store import Store
from ui.code import code_lang
from core.lasso import PointIndex
from ui.map_chart import (DRAW_ALL_UP_TO, HOVER_CODE_UP_TO, OVERVIEW_SAMPLE, MapDrawing, cluster_label_positions, colour_groups,
                          density_image, drawing, drawn_rows, hover_texts)



def how_to(n_points: int) -> str:
    """The map's instructions, as they hold for a map of this size."""
    hover = ("its name and first lines of code" if n_points <= HOVER_CODE_UP_TO else
             f"its cluster (maps above {HOVER_CODE_UP_TO:,} points leave code out of the hover: click to see it)")
    big = (f" This map has {n_points:,} points: the colours show every one of them, and "
           f"{OVERVIEW_SAMPLE:,} of them are drawn as points you can hover and click; zoom in until fewer than "
           f"{DRAW_ALL_UP_TO:,} are in view and all of them are drawn. A lasso always counts every point."
           if n_points > DRAW_ALL_UP_TO else "")
    return ("**Click** a point to see its code (in every tool). **Drag** to draw a lasso; the toolbar's "
            "box tool draws a rectangle, its pan and zoom tools move the view; the **scroll wheel** zooms. "
            "A lasso or box limits the candidates below; double-click an empty spot to clear it. "
            "**Click a cluster** in the legend or its name on the map to add it to (or drop it from) the "
            f"clusters below. **Hover** a point for {hover}.{big}")
SPREAD_DRAWS = 5


@st.cache_resource(show_spinner=False, max_entries=8)
def _colours(map_key: str, colour_by: str, highlight: int | None, status_key: str | None, _pts: pd.DataFrame,
             _chosen: np.ndarray, _labels: dict, _status) -> tuple:
    """(group per point, groups, overview image or None): once per map and colouring."""
    codes, groups = colour_groups(_pts, colour_by, _chosen, _labels, _status)
    overview = None
    if len(_pts) > DRAW_ALL_UP_TO:
        x, y = _pts["x"].to_numpy(np.float32), _pts["y"].to_numpy(np.float32)
        pad_x, pad_y = 0.02 * float(np.ptp(x) or 1), 0.02 * float(np.ptp(y) or 1)
        extent = (float(x.min()) - pad_x, float(x.max()) + pad_x, float(y.min()) - pad_y, float(y.max()) + pad_y)
        overview = density_image(x, y, codes, [g["colour"] for g in groups], extent)
    return codes, groups, overview


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_drawing(map_key: str, colour_by: str, highlight: int | None, status_key: str | None, view_key: str,
                    _store: Store, _pts: pd.DataFrame, _chosen: np.ndarray, _labels: dict, _status,
                    _view_rows, highlight_name: str) -> MapDrawing:
    codes, groups, overview = _colours(map_key, colour_by, highlight, status_key, _pts, _chosen, _labels, _status)
    hover = None
    if len(_pts) <= HOVER_CODE_UP_TO:
        hover = hover_texts(_pts["func_name"].tolist(), snippet_preview(_store, _pts["snippet_id"].tolist()))
    ui_key = hashlib.sha1(f"{map_key}:{colour_by}:{status_key}".encode()).hexdigest()[:16]
    return drawing(_pts, codes, groups, data_key=f"{ui_key}:{view_key}", ui_key=ui_key, chosen_mask=_chosen,
                   labels=cluster_label_positions(_pts, _labels), hover=hover, highlight_name=highlight_name,
                   rows=drawn_rows(len(_pts), _view_rows), overview=overview)


def build_drawing(store: Store, map_key: str, pts: pd.DataFrame, colour_by: str, highlight: int | None,
                  chosen_mask: np.ndarray, cluster_label: dict, status: pd.Series | None,
                  highlight_name: str, index: PointIndex, view: tuple | None = None) -> MapDrawing:
    """The component's arguments, built once per (map, colouring, highlight, review state, view).
    `view`: the (x range, y range) a big map is zoomed to (every point in it is drawn when few enough)."""
    status_key = None if status is None else str(pd.util.hash_pandas_object(status, index=False).sum())
    view_rows = index.in_box(*view) if view is not None and len(pts) > DRAW_ALL_UP_TO else None
    view_key = "all" if view_rows is None else hashlib.sha1(view_rows.tobytes()).hexdigest()[:12]
    return _cached_drawing(map_key, colour_by, highlight, status_key, view_key, store, pts, chosen_mask,
                           cluster_label, status, view_rows, highlight_name)


def kind_options(pts: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(every snippet kind on the map, the default choice): functions only when the map mixes
    functions with OSS-Instruct seed fragments, else everything."""
    kinds = sorted(pts["kind"].dropna().unique().tolist())
    if "function" in kinds and len(kinds) > 1:
        return kinds, ["function"]
    return kinds, kinds


def find_snippet(pts: pd.DataFrame, map_id: int) -> None:
    """A point picker by function name: the keyboard way to show a point's code."""
    query = st.text_input("Find a snippet", key=f"map.find.{map_id}",
                          placeholder="part of a function name, then pick it below")
    if not query.strip():
        return
    hits = pts.index[pts["func_name"].fillna("").str.contains(query.strip(), case=False, regex=False)][:200]
    if len(hits) == 0:
        st.caption("No snippet on this map has that in its name.")
        return
    options = [None] + [str(pts["snippet_id"].iloc[i]) for i in hits]
    names = {str(pts["snippet_id"].iloc[i]): f"{pts['func_name'].iloc[i]} · {pts['path'].iloc[i] or ''}"
             for i in hits}

    def show() -> None:
        picked = st.session_state.get(f"map.found.{map_id}")
        if picked:
            st.session_state[f"map.shown.{map_id}"] = picked

    st.selectbox(f"{len(hits)} match{'es' if len(hits) != 1 else ''}" + (" (first 200)" if len(hits) == 200 else ""),
                 options, key=f"map.found.{map_id}", on_change=show,
                 format_func=lambda s: "(pick one)" if s is None else names[s])


def snippet_panel(store: Store, pts: pd.DataFrame, map_id: int, cluster_label: dict) -> None:
    shown = st.session_state.get(f"map.shown.{map_id}")
    snip = get_snippet(store, shown) if shown else None
    if snip is None:
        st.info("Click a point on the map (or find one above) to see its code here.")
        return
    row = pts.loc[pts["snippet_id"] == shown]
    cluster = int(row["cluster"].iloc[0]) if len(row) else None
    st.markdown(f"**{snip['func_name'] or '(no name)'}** · {snip.get('kind') or ''} · cluster {cluster}: "
                f"*{cluster_label.get(cluster, '')}*")
    st.caption(f"{snip['language']} · {snip['path'] or snip['source']}"
               + (f":{snip['start_line']}" if snip["start_line"] else ""))
    st.code(snip["code"], language=code_lang(snip["language"], "text"), line_numbers=True)


# --------------------------------------------------------------------------- coverage

def _spread_key(selection_id: int) -> str:
    return f"map.coverage_spread.{int(selection_id)}"


def measure_spread(store: Store, selection_id: int, map_id: int, clusters, ids) -> dict:
    """Random (and stratified) draws over the selection's pool, kept with the app's state."""
    spread = coverage_spread(store, selection_id, map_id=map_id, clusters=clusters, ids=ids, draws=SPREAD_DRAWS)
    store.set_ui_state(_spread_key(selection_id), spread)
    return spread


def _fmt(s: dict) -> str:
    return f"{s['mean']:.4f} ({s['min']:.4f}–{s['max']:.4f})"


def spread_table(spread: dict) -> pd.DataFrame:
    rows = [{"method": "this selection", "max distance": f"{spread['selection']['max']:.4f}",
             "mean distance": f"{spread['selection']['mean']:.4f}"}]
    for m in ("random", "stratified"):
        if m in spread:
            rows.append({"method": f"{m} × {spread['draws']} draws", "max distance": _fmt(spread[m]["max"]),
                         "mean distance": _fmt(spread[m]["mean"])})
    return pd.DataFrame(rows).set_index("method")


def coverage_section(store: Store, selection_id: int, label: str, sel: pd.Series) -> None:
    st.markdown(f"**Coverage of {label}** — distance from each candidate to its nearest selected snippet "
                "(lower = no region left far from a chosen example):")
    table = compare_coverage(store, selection_id)
    st.table(table.rename(columns={"coverage_mean": "mean distance", "coverage_max": "max distance"})
             .set_index("method").round(4))
    spread = store.get_ui_state(_spread_key(selection_id))
    if spread is None:
        params = json.loads(sel["params"]) if isinstance(sel.get("params"), str) else {}
        if params.get("n_ids") is not None:
            st.caption("The spread of random draws was not measured for this selection (its pool was a lasso or "
                       "a kind filter that is not stored).")
        elif st.button(f"Measure {SPREAD_DRAWS} random draws", key=f"map.spread_btn.{selection_id}"):
            try:
                spread = measure_spread(store, selection_id, sel["map_id"], params.get("clusters"), None)
            except ShoalError as exc:
                st.error(str(exc))
    if spread is not None:
        st.markdown(f"**Spread over {spread['draws']} random draws** of the same budget "
                    f"({spread['budget']:,} of {spread['candidates']:,}): mean (min–max)")
        st.table(spread_table(spread))
        st.caption(gain_verdict(spread))
    st.caption("k-center greedy minimises the **max** distance: no snippet is left far from every pick. It "
               "reaches into sparse corners, so its mean distance can be a little higher than a random pick's, "
               "which follows the dense regions.")
