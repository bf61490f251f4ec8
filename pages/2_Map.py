"""Map: embed the corpus, see it as a map of named clusters, and pick the most diverse snippets."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from core.background import TaskRecord, is_running
from core.embed.choice import default_backend_note
from core.embed.run import BACKENDS, DEFAULT_MODEL, cached_models
from core.errors import ShoalError
from core.ingest.snippets import count_snippets
from core.maps.build import list_maps, map_clusters, map_coverage, map_points, map_review_status, stale_map_note
from core.maps.clusters import CLUSTER_METHODS
from core.maps.lasso import PointIndex
from core.maps.start import EMBED_MAP, EMBEDDING, FIRST_LOOK, THE_REST, start_embed_and_map
from core.select.run import METHODS
from core.select.stored import list_selections, selection_ids
from ui.app_pages import page
from ui.background import task_panel
from ui.common import lock_note, page_store, reviewer_name
from ui.map.chart import ChartState, apply_event, map_component, toggle
from ui.map.panels import (
    build_drawing,
    coverage_section,
    find_snippet,
    how_to,
    keep_map_widgets,
    kind_options,
    select_submitted,
    show_select_outcome,
    snippet_panel,
)
from ui.persist import PERSIST

store = page_store()
st.title("Map")
st.caption("Each point is a snippet, placed by meaning (embeddings → UMAP). Colours are clusters named by "
           "their most distinctive words. Pick clusters or draw a lasso, then ask for the N most diverse "
           "snippets (k-center greedy) and compare their coverage with random picks.")

running = is_running(store, EMBED_MAP.name)
map_lock, select_lock = lock_note("map"), lock_note("select")   # core refuses (and audits) anyway


def _build_progress(rec: TaskRecord) -> str:
    label = "Embedding snippets" if rec.stage == EMBEDDING else "Building the map"
    if rec.message.startswith(FIRST_LOOK):
        label += " (a first look at a sample; the rest follows)"
    elif rec.message.startswith(THE_REST):
        label += " (the map below is a first look at a sample; the full map follows)"
    return f"{label}: {rec.done:,} / {rec.total:,} · {rec.message}" if rec.total else f"{label}: {rec.message}"


def _show_new_map(rec: TaskRecord) -> None:
    if rec.result and rec.result.get("map_id"):
        st.session_state["map.map_id"] = rec.result["map_id"]


# --------------------------------------------------------------------------- build section

n_snippets = count_snippets(store)
if n_snippets == 0:
    st.info("The corpus is empty. Add code (or the built-in demo corpus) on the Corpus page first.")
    st.page_link(page("Corpus"), label="Go to Corpus", icon="➡️")
    st.stop()

maps_df = list_maps(store)
with st.expander("Embed and build a map", expanded=maps_df.empty or running):
    models = cached_models(store)
    st.caption(f"{n_snippets:,} snippets. Embeddings are cached by text and model: only new or changed "
               f"snippets are embedded. " + ("Cached: " + ", ".join(
                   f"`{m}` ({v:,})" for m, v in zip(models["model"], models["vectors"])) if len(models) else ""))
    with st.form("map.build_form", enter_to_submit=False):   # Enter in a field must not start a build
        c1, c2, c3, c4, c5 = st.columns([3, 1, 1, 1, 1])
        model_in = c1.text_input("Embedding model", value=DEFAULT_MODEL, key="map.model",
                                 help="A sentence-transformers model name or local folder. The default ships "
                                      "with Shoal and works offline.")
        backend_in = c2.selectbox("Backend", BACKENDS, key="map.backend", help="auto = static when the model would "
                                  "take more than an hour on this CPU, else the fast backend wherever it "
                                  "agrees with PyTorch (mean cosine >= 0.99) and is not slower, measured once per "
                                  "model; fast = ONNX Runtime with int8 weights (about 2× faster on a CPU, mean "
                                  "cosine 0.993 to torch's); torch = PyTorch (float16 on a GPU); static = a "
                                  "model2vec table distilled from the model (thousands of snippets a second; "
                                  "it agrees with the model only in part: see the README's agreement table).")
        batch_in = c3.number_input("Batch size", min_value=1, max_value=512, value=32, key="map.batch")
        clusters_in = c4.number_input("Clusters", min_value=0, max_value=500, value=0, key="map.n_clusters",
                                      help="0 = chosen from the corpus size. For HDBSCAN: minimum cluster size.")
        method_in = c5.selectbox("Clustering", CLUSTER_METHODS, key="map.cluster_method")
        go_build = st.form_submit_button("Embed and build map", type="primary", disabled=running or bool(map_lock))
    if map_lock:
        st.info(map_lock, icon=":material/lock:")
    if go_build and not running:
        try:
            start_embed_and_map(store, model_in.strip() or None, backend_in, int(batch_in), int(clusters_in),
                                method_in, actor=reviewer_name())
        except ShoalError as exc:
            st.error(str(exc))
        else:
            st.rerun()
    st.caption(default_backend_note(model_in.strip() or None))
    task_panel(store, EMBED_MAP.name, "map", _build_progress, on_finish=_show_new_map,
               rerun_on=lambda rec: rec.stage)     # a first-look map shows as soon as it is stored

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
top = st.columns([3, 2, 3])
map_id = top[0].selectbox("Map", list(map_labels), index=list(map_labels).index(default_map),
                          format_func=map_labels.get)
st.session_state["map.map_id"] = map_id
# what identifies a map's drawing in the caches: the same id in another (or a recreated) database is another map
map_key = f"{store.path}:{map_id}:{maps_df.set_index('id').loc[map_id, 'created_at']}"


@st.cache_resource(show_spinner=False, max_entries=4)
def _points(_store, map_key: str, map_id: int) -> pd.DataFrame:
    """Shared, not copied per run (a 1M-point table takes seconds to copy): read it, never change it."""
    return map_points(_store, map_id)


@st.cache_data(show_spinner=False, max_entries=4)
def _clusters(_store, map_key: str, map_id: int) -> pd.DataFrame:
    return map_clusters(_store, map_id)


@st.cache_resource(show_spinner=False, max_entries=4)
def _index(map_key: str, _pts: pd.DataFrame) -> PointIndex:
    return PointIndex(_pts["x"].to_numpy(), _pts["y"].to_numpy())


pts = _points(store, map_key, map_id)
clusters = _clusters(store, map_key, map_id)
cluster_label = dict(zip(clusters["cluster"].astype(int), clusters["label"]))
sels = list_selections(store)
sels = sels[sels["model"] == maps_df.set_index("id").loc[map_id, "model"]]
sel_names = {int(r.id): f"{r.name} · {r.method} · {r.n_items}" for r in sels.itertuples()}
kinds_all, kinds_default = kind_options(pts)
keep_map_widgets(store, len(pts), clusters["cluster"].astype(int).tolist(), kinds_all, kinds_default,
                 sels["name"].tolist())
hl_default = st.session_state.get("map.highlight")
hl_options = [None] + list(sel_names)
highlight = top[1].selectbox("Highlight selection", hl_options,
                             index=hl_options.index(hl_default) if hl_default in hl_options else 0,
                             format_func=lambda i: "(none)" if i is None else sel_names[i])
st.session_state["map.highlight"] = highlight
colour_by = top[2].radio("Colour by", ["cluster", "review status", "kind", "language", "source", "selection"],
                         horizontal=True, key="map.colour", **PERSIST)

chosen_mask = np.zeros(len(pts), dtype=bool)
if highlight is not None:
    chosen_mask = pts["snippet_id"].isin(set(selection_ids(store, sels.set_index("id").loc[highlight, "name"]))).to_numpy()
status = None
if colour_by == "review status":   # read each run: reviews change while the map does not
    status = pts[["snippet_id"]].merge(map_review_status(store, map_id), how="left", on="snippet_id")["status"]

index = _index(map_key, pts)
state: ChartState = st.session_state.setdefault(f"map.chart_state.{map_id}", ChartState())
drawing_ = build_drawing(store, map_key, pts, colour_by, highlight, chosen_mask, cluster_label, status,
                         highlight_name=sel_names.get(highlight, "selected"), index=index, view=state.view)

left, right = st.columns([3, 2])
with left:
    st.caption(how_to(len(pts)))
    event = map_component()(**drawing_.args, key=f"map.chart.{map_id}", default=None)
    view_before = state.view
    state, cluster_clicked = apply_event(state, event, drawing_, index)
    if state.view != view_before:
        st.rerun()   # a big map zoomed: draw the points now in view
    if cluster_clicked is not None:
        st.session_state["map.clusters"] = toggle(list(st.session_state.get("map.clusters", [])), cluster_clicked)
    if state.clicked_row is not None and event and event.get("kind") == "click":
        st.session_state[f"map.shown.{map_id}"] = str(pts["snippet_id"].iloc[state.clicked_row])

with right:
    find_snippet(pts, map_id)
    snippet_panel(store, pts, map_id, cluster_label)
    with st.expander(f"Clusters ({len(clusters)})"):
        st.dataframe(clusters.assign(terms=[", ".join(t["term"] for t in ts) for ts in clusters["terms"]]),
                     hide_index=True, width="stretch")

# --------------------------------------------------------------------------- selection form

st.subheader("Pick the most diverse snippets")
stale = stale_map_note(map_coverage(store, map_id))
if stale:
    st.warning(stale)
area_ids = pts["snippet_id"].iloc[state.area_rows].tolist() if state.area_rows is not None else None
if area_ids is not None:
    st.info(f"{len(area_ids):,} points in the {state.area_kind} selection: candidates are limited to them "
            "(double-click an empty spot of the map to clear it).")
# Enter in Budget or Name must not submit (a stray "selection N"): only the button selects
with st.form("map.select_form", enter_to_submit=False):
    c0, c1, c2, c3, c4 = st.columns([2, 3, 1, 1, 2])
    kinds = c0.multiselect("Snippet kinds", kinds_all, key="map.kinds", **PERSIST,
                           help="function = whole functions from the corpus; seed = OSS-Instruct seed fragments "
                                "(a few lines cut from a file). Farthest-point picks the odd ones first, so "
                                "mixing the two fills a k-center pick with fragments.")
    picked_clusters = c1.multiselect(
        "Clusters (empty = all)", clusters["cluster"].astype(int).tolist(), key="map.clusters", **PERSIST,
        format_func=lambda c: f"{c}: {cluster_label.get(c, '')} ({int(clusters.set_index('cluster').loc[c, 'size'])})")
    budget = c2.number_input("Budget", min_value=1, max_value=max(1, len(pts)), key="map.budget", **PERSIST)
    method = c3.selectbox("Method", METHODS, key="map.method", **PERSIST,
                          help="kcenter: exact k-center greedy, each pick the snippet farthest from all picks "
                               "so far (the same picks as the plain loop, found with pruning) · kcenter_fast: "
                               "the (1+ε)-relaxed greedy, ε = 0.05, on the full vectors: each pick is at least "
                               "1/1.05 as far as the farthest snippet, so a step can stop early; its max distance "
                               "measured within 2 % of exact's · random · stratified: random within clusters, in "
                               "proportion to their size")
    sel_name = c4.text_input("Name", key="map.sel_name", **PERSIST)
    extend_opts = ["(none)"] + sels["name"].tolist()
    extend = st.selectbox("Extend an existing selection (its items stay and count as centres)", extend_opts,
                          key="map.extend", **PERSIST)
    submitted = st.form_submit_button("Select", type="primary", disabled=bool(select_lock))
if select_lock:
    st.info(select_lock, icon=":material/lock:")
if submitted:
    select_submitted(store, map_id, pts, kinds, kinds_all, area_ids, picked_clusters, int(budget), method,
                     sel_name, None if extend == "(none)" else extend)
show_select_outcome()

if highlight is not None:
    coverage_section(store, highlight, sel_names[highlight], sels.set_index("id").loc[highlight])
