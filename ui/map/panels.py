"""The Map page's parts besides the chart: the code of the point shown, the snippet finder,
the kind filter's choices, and the coverage table with the spread of random draws."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import streamlit as st

from core.errors import ShoalError
from core.ingest.snippets import get_snippet
from core.maps.build import snippet_preview
from core.maps.lasso import PointIndex
from core.select.run import METHODS, select
from core.select.spread import SPREAD_DRAWS, coverage_spread, gain_verdict, spread_rows
from core.select.stored import compare_coverage, list_selections, save_spread, stored_spread
from core.store import Store
from ui.code import code_lang
from ui.common import reviewer_name
from ui.map.chart import (
    DRAW_ALL_UP_TO,
    HOVER_CODE_UP_TO,
    OVERVIEW_SAMPLE,
    MapDrawing,
    cluster_label_positions,
    colour_groups,
    density_image,
    drawing,
    drawn_rows,
    hover_texts,
)
from ui.persist import forget, keep
from ui.text import page_text, plain


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
    st.markdown(f"**{plain(snip['func_name'] or '(no name)')}** · {plain(snip.get('kind') or '')} · cluster "
                f"{cluster}: *{plain(cluster_label.get(cluster, ''))}*")
    st.caption(plain(f"{snip['language']} · {snip['path'] or snip['source']}"
                     + (f":{snip['start_line']}" if snip["start_line"] else "")))
    st.code(snip["code"], language=code_lang(snip["language"], "text"), line_numbers=True, wrap_lines=True)


# --------------------------------------------------------------------------- coverage

def measure_spread(store: Store, selection_id: int, map_id: int, clusters, ids) -> dict:
    """Random (and stratified) draws over the pool of a selection stored without them, stored with it."""
    spread = coverage_spread(store, selection_id, map_id=map_id, clusters=clusters, ids=ids, draws=SPREAD_DRAWS)
    save_spread(store, selection_id, spread)
    return spread


def coverage_section(store: Store, selection_id: int, label: str, sel: pd.Series) -> None:
    st.markdown(f"**Coverage of {plain(label)}** — distance from each candidate to its nearest selected snippet "
                "(lower = no region left far from a chosen example):")
    table = compare_coverage(store, selection_id)
    st.table(table.rename(columns={"coverage_mean": "mean distance", "coverage_max": "max distance"})
             .set_index("method").round(4))
    spread = stored_spread(store, selection_id)
    if spread is None:
        params = json.loads(sel["params"]) if isinstance(sel.get("params"), str) else {}
        if params.get("n_ids") is not None:
            st.caption("The spread of random draws is not recorded for this selection (its pool was a lasso or "
                       "a kind filter that is not stored).")
        elif st.button(f"Measure {SPREAD_DRAWS} random draws", key=f"map.spread_btn.{selection_id}"):
            try:
                spread = measure_spread(store, selection_id, sel["map_id"], params.get("clusters"), None)
            except ShoalError as exc:
                st.error(plain(exc))
    if spread is not None:
        st.markdown(f"**Spread over {spread['draws']} random draws** of the same budget "
                    f"({spread['budget']:,} of {spread['candidates']:,}): mean (min–max)")
        st.table(pd.DataFrame(spread_rows(spread)).set_index("method"))
        st.caption(gain_verdict(spread))
    st.caption("k-center greedy minimises the **max** distance: no snippet is left far from every pick. It "
               "reaches into sparse corners, so its mean distance can be a little higher than a random pick's, "
               "which follows the dense regions.")


# --------------------------------------------------------------------------- the selection form

def free_name(store: Store) -> str:
    """The form's default name: "selection N", the first N no selection has taken."""
    taken = set(list_selections(store)["name"])
    n = len(taken) + 1
    while f"selection {n}" in taken:
        n += 1
    return f"selection {n}"


def keep_map_widgets(store: Store, n_points: int, cluster_ids: list[int], kinds_all: list[str],
                     kinds_default: list[str], selection_names: list[str]) -> None:
    """The map's colouring and the selection form keep their values across other pages (ui.persist.keep),
    within what this map offers; after a saved selection the name starts afresh."""
    ss = st.session_state
    if ss.pop("map.fresh_name", False):
        forget("map.sel_name")
    keep({"map.colour": "cluster", "map.kinds": kinds_default, "map.clusters": [],
          "map.budget": max(1, min(200, n_points)), "map.method": METHODS[0],
          "map.sel_name": lambda: free_name(store), "map.extend": "(none)"})
    fixed = {"map.kinds": [k for k in ss["map.kinds"] if k in kinds_all],
             "map.clusters": [c for c in ss["map.clusters"] if c in set(cluster_ids)],
             "map.budget": min(max(1, int(ss["map.budget"])), max(1, n_points)),
             "map.method": ss["map.method"] if ss["map.method"] in METHODS else METHODS[0],
             "map.extend": ss["map.extend"] if ss["map.extend"] in selection_names else "(none)"}
    for key, value in fixed.items():
        if ss[key] != value:      # written only when it changed (a write marks the value as set by the page)
            ss[key] = value


def select_submitted(store: Store, map_id: int, pts: pd.DataFrame, kinds: list[str], kinds_all: list[str],
                     area_ids: list[str] | None, clusters: list[int], budget: int, method: str, name: str,
                     extend: str | None) -> None:
    """The Select button: pick, save (with the random draws' spread), then show the map with it highlighted.
    Only this submit's outcome is shown: an error never sits beside an earlier "Saved selection"."""
    ss = st.session_state
    ss.pop("map.last_result", None)
    pool = pts["snippet_id"][pts["kind"].isin(kinds)] if kinds else pts["snippet_id"]
    ids = pool.tolist() if (kinds and len(kinds) < len(kinds_all)) or area_ids is not None else None
    if area_ids is not None:
        ids = sorted(set(area_ids) & set(ids if ids is not None else area_ids))
    try:
        if ids is not None and not ids:
            raise ShoalError("No snippet of the chosen kinds lies in the selected area.")
        with st.spinner("Selecting…"):
            res = select(store, name=name, budget=budget, method=method, map_id=map_id, clusters=clusters or None,
                          ids=ids, extend=extend, actor=reviewer_name())
            # noted before any other Streamlit call: a rerun that interrupts the page from here on
            # still finds the selection saved and said so
            ss.update({"map.highlight": res.id, "map.fresh_name": True, "map.last_result": (
                f"Saved selection **{plain(res.name)}**: {res.n_items} snippets from {res.n_candidates:,} "
                f"candidates ({res.seconds:.2f} s).")})
    except ShoalError as exc:
        st.error(plain(page_text(exc)))
        return
    st.rerun()


def show_select_outcome() -> None:
    if st.session_state.get("map.last_result"):
        st.success(st.session_state["map.last_result"])
