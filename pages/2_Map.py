"""Map: embed the corpus, see it as a map of named clusters, and pick the most diverse snippets."""
from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.embed import BACKENDS, DEFAULT_MODEL, cached_models, embed_corpus, embedding_status
from core.errors import ShoalError
from core.maps import CLUSTER_METHODS, build_map, list_maps, map_clusters, map_points
from core.progress import Cancelled
from core.select import METHODS, compare_coverage, list_selections, select, selection_ids
from ui.common import page_setup, reviewer_name

store = page_setup("Map")
st.title("Map")
st.caption("Each point is a snippet, placed by meaning (embeddings → UMAP). Colours are clusters named by "
           "their most distinctive words. Pick clusters or draw a lasso, then ask for the N most diverse "
           "snippets (k-center greedy) and compare their coverage with a random pick.")

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363", "#6baed6", "#fd8d3c", "#74c476", "#9e9ac8", "#969696", "#9c9ede", "#cedb9c",
           "#e7cb94", "#e7969c", "#de9ed6", "#08519c", "#a63603", "#006d2c", "#54278f", "#252525", "#4292c6",
           "#f16913", "#41ab5d", "#807dba", "#737373"]


# --------------------------------------------------------------------------- background job

@st.cache_resource(show_spinner=False)
def _jobs() -> dict:
    """Embed+map jobs of this app process, by database path (survive reruns and page switches)."""
    return {}


def _start_job(model: str | None, backend: str, batch_size: int, n_clusters: int, method: str) -> None:
    state = {"running": True, "stage": "embedding", "done": 0, "total": None, "note": "starting",
             "error": None, "result": None, "started": time.time(), "seen": False}
    cancel = threading.Event()

    def progress(done, total, note=""):
        state.update(done=done, total=total, note=note)

    def work():
        try:
            r = embed_corpus(store, model=model, backend=backend, batch_size=batch_size, progress=progress,
                             cancel=cancel)
            state.update(stage="map", done=0, total=None, note="UMAP")
            m = build_map(store, model=r.model_key, n_clusters=n_clusters or None, method=method,
                          progress=progress, cancel=cancel)
            state["result"] = (f"Embedded {r.n_embedded} snippets ({r.n_cached} were cached); map {m.map_id}: "
                               f"{m.n_points} points in {m.n_clusters} clusters.")
            state["map_id"] = m.map_id
        except Cancelled:
            state["error"] = "Cancelled. Embeddings finished so far are kept; running again continues from there."
        except ShoalError as exc:
            state["error"] = str(exc)
        except Exception as exc:  # noqa: BLE001 - shown to the user, the thread must not die silently
            state["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            state["running"] = False

    thread = threading.Thread(target=work, name="shoal-map-job", daemon=True)
    _jobs()[str(store.path)] = {"state": state, "cancel": cancel, "thread": thread}
    thread.start()


job = _jobs().get(str(store.path))
running = bool(job and job["state"]["running"])


@st.fragment(run_every=1.0 if running else None)
def job_panel() -> None:
    job = _jobs().get(str(store.path))
    if not job:
        return
    s = job["state"]
    if s["running"]:
        total = s["total"] or 0
        frac = min(1.0, s["done"] / total) if total else 0.0
        label = "Embedding snippets" if s["stage"] == "embedding" else "Building the map"
        st.progress(frac, text=f"{label}: {s['done']:,} / {total:,} · {s['note']}" if total else f"{label}: {s['note']}")
        if st.button("Cancel", key="map.cancel"):
            job["cancel"].set()
    elif not s["seen"]:
        s["seen"] = True
        if s.get("map_id"):
            st.session_state["map.map_id"] = s["map_id"]
        st.rerun()  # whole page: show the new map (or the error)
    elif s["error"]:
        st.error(s["error"])
    elif s["result"]:
        st.success(s["result"])


# --------------------------------------------------------------------------- build section

n_snippets = int(store.scalar("SELECT count(*) FROM snippets") or 0)
if n_snippets == 0:
    st.info("The corpus is empty. Add code (or the built-in demo corpus) on the Corpus page first.")
    st.page_link("pages/1_Corpus.py", label="Go to Corpus", icon="➡️")
    st.stop()

maps_df = list_maps(store)
with st.expander("Embed and build a map", expanded=maps_df.empty or running):
    models = cached_models(store)
    st.caption(f"{n_snippets:,} snippets. Embeddings are cached by text and model: only new or changed "
               f"snippets are embedded. " + ("Cached: " + ", ".join(
                   f"`{m}` ({v:,})" for m, v in zip(models["model"], models["vectors"])) if len(models) else ""))
    with st.form("map.build_form"):
        c1, c2, c3, c4, c5 = st.columns([3, 1, 1, 1, 1])
        model_in = c1.text_input("Embedding model", value=DEFAULT_MODEL, key="map.model",
                                 help="A sentence-transformers model name or local folder. The default ships "
                                      "with Shoal and works offline.")
        backend_in = c2.selectbox("Backend", BACKENDS, key="map.backend", help="fast = ONNX Runtime with int8 weights: about "
                                  "2× faster on a CPU, nearly the same vectors (mean cosine 0.993 to torch's).")
        batch_in = c3.number_input("Batch size", min_value=1, max_value=512, value=32, key="map.batch")
        clusters_in = c4.number_input("Clusters", min_value=0, max_value=500, value=0, key="map.n_clusters",
                                      help="0 = chosen from the corpus size. For HDBSCAN: minimum cluster size.")
        method_in = c5.selectbox("Clustering", CLUSTER_METHODS, key="map.cluster_method")
        go_build = st.form_submit_button("Embed and build map", type="primary", disabled=running)
    if go_build and not running:
        _start_job(model_in.strip() or None, backend_in, int(batch_in), int(clusters_in), method_in)
        st.rerun()
    job_panel()

if maps_df.empty:
    if not running:
        st.info("No map yet: press **Embed and build map** above.")
    st.stop()

# --------------------------------------------------------------------------- the map

map_labels = {int(r.id): f"#{r.id} · {r.name} · {r.n_points:,} points · {r.n_clusters} clusters · {r.model}"
              for r in maps_df.itertuples()}
default_map = st.session_state.get("map.map_id", int(maps_df["id"].iloc[0]))
if default_map not in map_labels:
    default_map = int(maps_df["id"].iloc[0])
top = st.columns([3, 2, 2])
map_id = top[0].selectbox("Map", list(map_labels), index=list(map_labels).index(default_map),
                          format_func=map_labels.get)
st.session_state["map.map_id"] = map_id


@st.cache_data(show_spinner=False, max_entries=4)
def _points(_store, map_id: int) -> pd.DataFrame:
    return map_points(_store, map_id)


@st.cache_data(show_spinner=False, max_entries=4)
def _clusters(_store, map_id: int) -> pd.DataFrame:
    return map_clusters(_store, map_id)


pts = _points(store, map_id)
clusters = _clusters(store, map_id)
cluster_label = dict(zip(clusters["cluster"].astype(int), clusters["label"]))
sels = list_selections(store)
sels = sels[sels["model"] == maps_df.set_index("id").loc[map_id, "model"]]
sel_names = {int(r.id): f"{r.name} · {r.method} · {r.n_items}" for r in sels.itertuples()}
hl_default = st.session_state.get("map.highlight")
hl_options = [None] + list(sel_names)
highlight = top[1].selectbox("Highlight selection", hl_options,
                             index=hl_options.index(hl_default) if hl_default in hl_options else 0,
                             format_func=lambda i: "(none)" if i is None else sel_names[i])
st.session_state["map.highlight"] = highlight
colour_by = top[2].radio("Colour by", ["cluster", "language", "source", "selection"], horizontal=True,
                         key="map.colour")

chosen_mask = np.zeros(len(pts), dtype=bool)
if highlight is not None:
    chosen_mask = pts["snippet_id"].isin(set(selection_ids(store, sels.set_index("id").loc[highlight, "name"]))).to_numpy()


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"


@st.cache_resource(show_spinner=False, max_entries=8)
def _figure(db: str, map_id: int, colour_by: str, highlight: int | None, _pts: pd.DataFrame,
            _chosen_mask: np.ndarray, _cluster_label: dict) -> go.Figure:
    """The map figure, built once per (map, colouring, highlighted selection): building 100k
    validated plotly points takes about a second, so reruns reuse it."""
    pts, chosen_mask, cluster_label = _pts, _chosen_mask, _cluster_label
    fig = go.Figure()
    n = len(pts)
    size = 7 if n < 2_000 else 4 if n < 30_000 else 2.5
    if colour_by == "cluster":
        groups = pts["cluster"].astype(int)
        names = {g: _short(f"{g}: {cluster_label.get(g, '')}") for g in groups.unique()}
    elif colour_by == "selection":
        groups = pd.Series(np.where(chosen_mask, "selected", "not selected"), index=pts.index)
        names = {"selected": "selected", "not selected": "not selected"}
    else:
        groups = pts[colour_by].fillna("?").astype(str)
        names = {g: g for g in groups.unique()}
    rows = np.arange(n)
    for j, g in enumerate(sorted(names, key=lambda v: (str(type(v)), v))):
        m = (groups == g).to_numpy()
        colour = ("#d0d0d0" if g == "not selected" else "#d62728" if g == "selected"
                  else PALETTE[j % len(PALETTE)] if g != -1 else "#bbbbbb")
        fig.add_trace(go.Scattergl(
            x=pts["x"].to_numpy()[m], y=pts["y"].to_numpy()[m], mode="markers", name=str(names[g]),
            marker=dict(size=size, color=colour, opacity=0.75), customdata=rows[m],
            text=pts["func_name"].fillna("").to_numpy()[m],
            hovertemplate="%{text}<br>%{fullData.name}<extra></extra>"))
    if chosen_mask.any() and colour_by != "selection":
        fig.add_trace(go.Scattergl(
            x=pts["x"].to_numpy()[chosen_mask], y=pts["y"].to_numpy()[chosen_mask], mode="markers",
            name="selected", marker=dict(size=size + 5, color="rgba(0,0,0,0)", line=dict(width=1.5, color="black")),
            customdata=rows[chosen_mask], text=pts["func_name"].fillna("").to_numpy()[chosen_mask],
            hovertemplate="%{text}<br>selected<extra></extra>"))
    # Many clusters: the legend goes below the map in rows, so it never squeezes the map into a strip.
    n_traces = len(fig.data)
    legend = dict(itemsizing="constant", font=dict(size=11))
    height = 640
    if n_traces > 8:
        legend.update(orientation="h", x=0, xanchor="left", y=-0.01, yanchor="top", entrywidth=0.33,
                      entrywidthmode="fraction")
        height += 20 * -(-n_traces // 3)
    fig.update_layout(height=height, margin=dict(l=0, r=0, t=10, b=0), dragmode="lasso", uirevision=str(map_id),
                      legend=legend, xaxis=dict(visible=False), yaxis=dict(visible=False))
    return fig


left, right = st.columns([3, 2])
with left:
    event = st.plotly_chart(_figure(str(store.path), map_id, colour_by, highlight, pts, chosen_mask, cluster_label),
                            key=f"map.chart.{map_id}", on_select="rerun",
                            selection_mode=("points", "box", "lasso"), config={"scrollZoom": True})


def _rows_of(points: list) -> list[int]:
    out = []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if cd is not None:
            out.append(int(cd))
    return sorted(set(out))


selection = event.selection if event else None
picked_rows = _rows_of(selection.points) if selection else []
is_area = bool(selection and (selection.box or selection.lasso))
lasso_ids = pts["snippet_id"].iloc[picked_rows].tolist() if is_area else []
clicked = picked_rows[0] if (picked_rows and not is_area) else None

with right:
    if clicked is None:
        st.info("Click a point to see its code here. Draw a lasso or a box to limit the selection to an area.")
    else:
        p = pts.iloc[clicked]
        snip = store.one("SELECT func_name, path, language, source, code, start_line FROM snippets WHERE id = ?",
                         [p["snippet_id"]])
        st.markdown(f"**{snip['func_name'] or '(no name)'}** · cluster {int(p['cluster'])}: "
                    f"*{cluster_label.get(int(p['cluster']), '')}*")
        st.caption(f"{snip['language']} · {snip['path'] or snip['source']}"
                   + (f":{snip['start_line']}" if snip["start_line"] else ""))
        st.code(snip["code"], language=(snip["language"] or "text").lower(), line_numbers=True)
    with st.expander(f"Clusters ({len(clusters)})"):
        st.dataframe(clusters.assign(terms=[", ".join(t["term"] for t in ts) for ts in clusters["terms"]]),
                     hide_index=True, width="stretch")

# --------------------------------------------------------------------------- selection form

st.subheader("Pick the most diverse snippets")
if lasso_ids:
    st.info(f"{len(lasso_ids):,} points in the lasso/box selection: candidates are limited to them "
            "(clear the selection on the chart to use the whole map).")
with st.form("map.select_form"):
    c1, c2, c3, c4 = st.columns([3, 1, 1, 2])
    picked_clusters = c1.multiselect(
        "Clusters (empty = all)", clusters["cluster"].astype(int).tolist(), key="map.clusters",
        format_func=lambda c: f"{c}: {cluster_label.get(c, '')} ({int(clusters.set_index('cluster').loc[c, 'size'])})")
    budget = c2.number_input("Budget", min_value=1, max_value=max(1, len(pts)), value=min(200, len(pts)),
                             key="map.budget")
    method = c3.selectbox("Method", METHODS, key="map.method",
                          help="kcenter: exact k-center greedy · kcenter_fast: same on 64 PCA dimensions · "
                               "random · stratified: random within clusters, in proportion to their size")
    sel_name = c4.text_input("Name", value=f"selection {len(list_selections(store)) + 1}", key="map.sel_name")
    extend_opts = ["(none)"] + sels["name"].tolist()
    extend = st.selectbox("Extend an existing selection (its items stay and count as centres)", extend_opts,
                          key="map.extend")
    submitted = st.form_submit_button("Select", type="primary")
if submitted:
    try:
        with st.spinner("Selecting…"):
            res = select(store, name=sel_name, budget=int(budget), method=method, map_id=map_id,
                         clusters=picked_clusters or None, ids=lasso_ids or None,
                         extend=None if extend == "(none)" else extend, actor=reviewer_name())
        st.session_state["map.highlight"] = res.id
        st.session_state["map.last_result"] = (f"Saved selection **{res.name}**: {res.n_items} snippets from "
                                               f"{res.n_candidates:,} candidates ({res.seconds:.2f} s).")
        st.rerun()
    except ShoalError as exc:
        st.error(str(exc))
if st.session_state.get("map.last_result"):
    st.success(st.session_state["map.last_result"])

if highlight is not None:
    st.markdown(f"**Coverage of {sel_names[highlight]}** — distance from each candidate to its nearest "
                "selected snippet (lower = no region left far from a chosen example):")
    table = compare_coverage(store, highlight)
    st.table(table.rename(columns={"coverage_mean": "mean distance", "coverage_max": "max distance"})
             .set_index("method").round(4))
    st.caption("k-center greedy minimises the **max** distance: no snippet is left far from every pick. It "
               "reaches into sparse corners, so its mean distance can be a little higher than a random pick's, "
               "which follows the dense regions.")
