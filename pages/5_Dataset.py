"""Dataset: check the curated set (benchmarks, near-duplicates, semantic duplicates and leaks, execution), see what
it is made of, calibrate the judge against the reviewers, export it."""
import json
from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from core.background import TaskRecord, is_running
from core.dataset.checks import analytics as an
from core.dataset.checks.benchmarks import KNOWN as BENCHMARKS
from core.dataset.checks.examples import load_examples
from core.dataset.checks.exclusions import automatic_exclusions, confirm_exclusions, unconfirmed
from core.dataset.checks.neardup import duplicate_groups, keep_one
from core.dataset.checks.results import current_checks, latest_run, set_override
from core.dataset.checks.start import CHECKS, benchmark_spec, start_checks
from core.dataset.export import export_dataset, export_zip, recent_exports, select_rows
from core.dataset.formats import EXPORT_FORMATS
from core.errors import ShoalError
from core.sandbox.isolation import sandbox_problem
from ui.background import task_panel
from ui.common import page_store, require_page, reviewer_name
from ui.dataset.hub_push import hub_push_panel
from ui.dataset.judge_eval_panel import judge_eval_panel
from ui.dataset.semantic import semantic_panel
from ui.dataset.versions import versions_panel
from ui.palettes import REVIEW_STATUS
from ui.persist import PERSIST, keep
from ui.text import page_text, plain, text_table

store = page_store()
require_page("export")     # checks and export: owner or curator (a reviewer sees why, nothing else)
st.title("Dataset")
st.caption("Check the generated set, see what it is made of, and export the accepted examples for fine-tuning.")

ex = load_examples(store)
if ex.empty:
    st.info("No generated examples yet. Generate some on the **Generate** page, review them on the "
            "**Review** page, then come back here to check and export them.")
    st.stop()

selection = select_rows(store)
verdicts = ex["verdict"].fillna("unreviewed")
c = st.columns(5)
c[0].metric("Generated examples", len(ex))
c[1].metric("Accepted", int((verdicts == "accepted").sum()))
c[2].metric("Rejected", int((verdicts == "rejected").sum()))
c[3].metric("Not reviewed", int((~verdicts.isin(["accepted", "rejected"])).sum()))
c[4].metric("Exportable now", len(selection.rows), help="Accepted, and no failing check unless overridden.")

# the check and export settings keep their values while the user is on another page
keep({"ds_benchmarks": ["humaneval"], "ds_bench_paths": "", "ds_ngram": 0, "ds_threshold": 0.58, "ds_rouge": False,
      "ds_exec": False, "ds_exec_sample": 200, "ds_fmt": list(EXPORT_FORMATS)[0], "ds_include_judged": False,
      "ds_apply_checks": True, "ds_name": "Shoal dataset", "ds_out": "", "ds_overwrite": False})

# =========================================================================== checks
st.header("Checks")
checking = is_running(store, CHECKS.name)
with st.form("ds_check_form", enter_to_submit=False):     # Enter in a field must not start the checks
    cols = st.columns([2, 2, 1])
    chosen = cols[0].multiselect("Benchmarks", list(BENCHMARKS), key="ds_benchmarks", **PERSIST,
                                 help="HumanEval is built in. Others need a JSONL/Parquet file path "
                                      "(or are loaded from the Hugging Face hub when online).")
    paths = cols[1].text_input("Benchmark files", key="ds_bench_paths", **PERSIST, placeholder="mbpp=/data/mbpp.jsonl, gsm8k=…",
                               help="name=PATH pairs, comma-separated.")
    ngram = cols[2].number_input("N-gram overlap (0 = off)", 0, 64, key="ds_ngram", **PERSIST,
                                 help="datatrove uses 12-grams.")
    threshold = st.slider("Near-duplicate Jaccard threshold", 0.3, 1.0, step=0.01, key="ds_threshold", **PERSIST)
    # each check on a row of its own: a checkbox label in a narrow column is cut off with an ellipsis
    rouge = st.checkbox("Also compare instructions (ROUGE-L above 0.7)", key="ds_rouge", **PERSIST,
                        help="Self-instruct's filter: two examples whose instructions share most words "
                             "form a near-duplicate group too.")
    cols = st.columns([2, 1])
    run_exec = cols[0].checkbox("Execute Python solutions", key="ds_exec", **PERSIST,
                                help="Runs each solution in a sandboxed subprocess; one that fails is left out.")
    exec_sample = cols[1].number_input("Execute at most", 1, 100_000, key="ds_exec_sample", **PERSIST)
    st.caption("Checks only flag examples. Before an export you see every example they would leave out, and "
               "you confirm any that a reviewer accepted.")
    submitted = st.form_submit_button("Run checks", type="primary", disabled=checking)

if submitted and not checking:
    try:
        start_checks(store, benchmark_spec(chosen, paths), int(ngram) or None, threshold, rouge, run_exec,
                     int(exec_sample), actor=reviewer_name())
    except ShoalError as exc:
        st.error(page_text(exc))
    else:
        st.rerun()


def _checks_progress(rec: TaskRecord) -> str:
    return f"{rec.message} {rec.done}/{rec.total or '?'}"


task_panel(store, CHECKS.name, "ds_checks", _checks_progress, fmt=page_text)

summary = an.check_summary(store)
if summary.empty:
    st.info("No checks run yet: run them before exporting (the dataset card reports the result).")
else:
    st.dataframe(summary, hide_index=True, width="content")

titles = ex.set_index("generation_id")["instruction"].str.slice(0, 90).to_dict()
dec = current_checks(store, "decontamination")
dec = dec[~dec["passed"].astype(bool)] if not dec.empty else dec
with st.expander(f"Benchmark contamination: {len(dec)} flagged", expanded=bool(len(dec))):
    rows = []
    for r in dec.itertuples():
        for h in json.loads(r.detail or "{}").get("hits", []):
            rows.append({"example": r.generation_id, "overridden": bool(r.overridden), "benchmark": h["benchmark"],
                         "item": h["item"], "field": h["field"], "method": h["method"], "matched text": h["matched"]})
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        pick = st.multiselect("Examples", sorted(dec["generation_id"].astype(int)), key="ds_dec_pick",
                              format_func=lambda g: f"#{g} {titles.get(g, '')}")
        b1, b2 = st.columns(2)
        if b1.button("Allow in export anyway (override)", key="ds_dec_override", disabled=not pick):
            for g in pick:
                set_override(store, g, "decontamination", True, actor=reviewer_name())
            st.rerun()
        if b2.button("Remove override", key="ds_dec_unoverride", disabled=not pick):
            for g in pick:
                set_override(store, g, "decontamination", False, actor=reviewer_name())
            st.rerun()
    else:
        st.write("No example contains benchmark text.")

groups = duplicate_groups(store)
with st.expander(f"Near-duplicate groups: {len(groups)} (keep one of each)", expanded=0 < len(groups) <= 3):
    if not groups:
        st.write("No near-duplicates.")
    for g in groups[:30]:
        members = [m["generation_id"] for m in g["members"]]
        st.markdown(f"**Group of {len(members)}** — kept now: #{g['keep']}; every other member is similar "
                    f"to #{g['keep']}")
        st.dataframe(pd.DataFrame([{"example": m["generation_id"], "kept": m["passed"],
                                    "similar to": m["similar_to"], "similarity": m["similarity"],
                                    "method": m["method"],
                                    "instruction": titles.get(m["generation_id"], "")} for m in g["members"]]),
                     hide_index=True, width="stretch")
        k1, k2 = st.columns([3, 1])
        keep = k1.selectbox("Keep", members, index=members.index(g["keep"]) if g["keep"] in members else 0,
                            key=f"ds_keep_{g['group']}", format_func=lambda x: f"#{x} {titles.get(x, '')}")
        if k2.button("Keep one, reject the rest", key=f"ds_keep_btn_{g['group']}"):
            try:
                out = keep_one(store, members, int(keep), reviewer=reviewer_name())
                st.toast(f"Kept #{out['kept']}, rejected {len(out['rejected'])}")
                st.rerun()
            except ShoalError as exc:
                st.error(page_text(exc))
    if len(groups) > 30:
        st.caption(f"Showing 30 of {len(groups)} groups.")

semantic_panel(store, ex, titles, benchmark_spec(st.session_state.get("ds_benchmarks") or ["humaneval"],
                                                  st.session_state.get("ds_bench_paths") or ""))

exe = current_checks(store, "execution")
if no_sandbox := sandbox_problem():   # refused, not run unconfined: say why and the fix
    st.warning(f"Execution is skipped on this machine: {no_sandbox}")
with st.expander(f"Execution results: {len(exe)} examples run", expanded=False):
    if exe.empty:
        st.write("Not run yet (tick “Execute Python solutions” above; code runs in a sandboxed subprocess).")
    else:
        details = [json.loads(d or "{}") for d in exe["detail"]]
        st.dataframe(pd.DataFrame({"example": exe["generation_id"], "status": [d.get("status") for d in details],
                                   "seconds": [d.get("seconds") for d in details],
                                   "stderr": [(d.get("stderr") or "")[-300:] for d in details]}),
                     hide_index=True, width="stretch")

# =========================================================================== analytics
st.header("Analytics")
scope = st.radio("Examples", ["All generated", "Accepted only"], horizontal=True, key="ds_scope")
view = ex if scope == "All generated" else ex[ex["verdict"] == "accepted"]
if view.empty:
    st.info("No accepted examples yet; showing nothing for this scope.")
else:
    left, right = st.columns(2)
    with left:
        st.subheader("Task and language mix")
        m = an.mix(view).groupby(["task", "language"], as_index=False)["examples"].sum()
        st.plotly_chart(px.bar(m, x="task", y="examples", color="language", barmode="stack"),
                        key="ds_chart_mix")
    with right:
        st.subheader("Length (tokens)")
        lens = an.lengths(view)
        st.plotly_chart(px.histogram(lens, x="tokens", color="field", barmode="overlay", nbins=40, opacity=0.65),
                        key="ds_chart_lengths")

    left, right = st.columns(2)
    with left:
        st.subheader("Categories (Magicoder's ten)")

        @st.cache_data(show_spinner="Embedding examples for the category breakdown…", max_entries=8)
        def _categories(frame: pd.DataFrame) -> pd.DataFrame:
            return an.categories(frame, an.default_embedder(store))
        try:
            cats = _categories(view[["generation_id", "instruction", "solution"]].reset_index(drop=True))
            counts = cats["category"].value_counts().reindex(list(an.CATEGORIES), fill_value=0).rename_axis(
                "category").reset_index(name="examples")
            st.plotly_chart(px.bar(counts, x="examples", y="category", orientation="h"), key="ds_chart_categories")
        except ShoalError as exc:
            st.warning(f"Category breakdown unavailable: {exc}")
    with right:
        st.subheader("Similarity to HumanEval (TF-IDF)")
        sim = an.humaneval_similarity(view)
        fig = px.histogram(sim, x="max_similarity", nbins=30, range_x=[0, 1],
                           labels={"max_similarity": "max cosine similarity to the 164 HumanEval problems"})
        st.plotly_chart(fig, key="ds_chart_humaneval")
        st.caption(f"Median {sim['max_similarity'].median():.2f}; "
                   f"{int((sim['max_similarity'] > 0.5).sum())} examples above 0.5.")

left, right = st.columns(2)
with left:
    st.subheader("Acceptance rate per task")
    acc = an.acceptance_by_task(ex)
    st.plotly_chart(px.bar(acc, x="task", y="acceptance_rate", hover_data=["accepted", "rejected", "unreviewed"],
                           range_y=[0, 1]), key="ds_chart_acc_task")
with right:
    st.subheader("Acceptance rate per cluster")
    accc = an.acceptance_by_cluster(store, ex)
    if accc.empty:
        st.info("No corpus map yet (Map page).")
    else:
        accc["cluster_name"] = accc["cluster"].astype(str) + " " + accc["label"].astype(str).str.slice(0, 30)
        st.plotly_chart(px.bar(accc, x="cluster_name", y="acceptance_rate", range_y=[0, 1],
                               hover_data=["accepted", "rejected", "unreviewed"]), key="ds_chart_acc_cluster")

left, right = st.columns(2)
with left:
    st.subheader("Judge vs human")
    ag = an.judge_human_agreement(store, ex)
    a1, a2, a3 = st.columns(3)
    a1.metric("Both decided", ag["n"])
    a2.metric("Agreement", "–" if ag["agreement"] is None else f"{ag['agreement']:.0%}")
    a3.metric("Cohen's κ", "–" if ag["kappa"] is None else f"{ag['kappa']:.2f}")
    t = ag["table"].pivot(index="judge", columns="human", values="examples")
    st.plotly_chart(px.imshow(t, text_auto=True, color_continuous_scale="Blues",
                              labels={"x": "human", "y": "judge", "color": "examples"}), key="ds_chart_agreement")
with right:
    st.subheader("Accepted set on the corpus map")
    pts = an.accepted_on_map(store, ex)
    if pts.empty:
        st.info("No corpus map yet (Map page).")
    else:
        fig = px.scatter(pts.sort_values("status", key=lambda s: s.map({"no example": 0}).fillna(1)),
                         x="x", y="y", color="status", color_discrete_map=REVIEW_STATUS, render_mode="webgl",
                         hover_data={"cluster": True, "x": False, "y": False})
        fig.update_traces(marker={"size": 5})
        fig.update_layout(xaxis_visible=False, yaxis_visible=False)
        st.plotly_chart(fig, key="ds_chart_map")

# =========================================================================== judge calibration
judge_eval_panel(store)

# =========================================================================== export

def exclusions_preview(apply_checks: bool) -> bool:
    """Every automatic exclusion with its reason; True while accepted examples a check would leave out
    wait for the user's confirmation (the export buttons stay off until then)."""
    table = automatic_exclusions(store)
    with st.expander(f"Automatic exclusions: {len(table)} (pre-filter, near-duplicates, execution, benchmarks, "
                     "semantic checks)",
                     expanded=False):
        if table.empty:
            st.write("Nothing was stopped by the pre-filter or flagged by a check.")
        elif len(table) <= 100:   # static HTML: every reason readable (and findable with Ctrl+F)
            st.table(text_table(table.drop(columns=["kind", "check_id"]).set_index("example")))
        else:
            st.dataframe(table.drop(columns=["kind", "check_id"]), hide_index=True, width="stretch", key="ds_exclusions")
    waiting = unconfirmed(store) if apply_checks else pd.DataFrame()
    if waiting.empty:
        return False
    st.warning(f"**{waiting['example'].nunique()} examples a reviewer accepted would be left out by a check.** "
               "Confirm to leave them out, or allow them in the export anyway.")
    st.table(text_table(waiting.drop(columns=["kind", "check_id", "overridden", "in export"]).set_index("example")))
    c1, c2 = st.columns(2)
    if c1.button("Leave them out of the export", key="ds_confirm_exclusions"):
        confirm_exclusions(store, waiting["check_id"].astype(int).tolist(), actor=reviewer_name())
        st.rerun()
    if c2.button("Keep them in the export (override the checks)", key="ds_override_accepted"):
        for example, kind in zip(waiting["example"], waiting["kind"]):
            set_override(store, int(example), kind, True, actor=reviewer_name())
        st.rerun()
    return True


st.header("Export")
cols = st.columns([2, 1, 1])
fmt = cols[0].selectbox("Format", list(EXPORT_FORMATS), format_func=lambda f: EXPORT_FORMATS[f], key="ds_fmt", **PERSIST)
include_judged = cols[1].checkbox("Include judge-passed unreviewed", key="ds_include_judged", **PERSIST)
apply_checks = cols[2].checkbox("Apply check verdicts", key="ds_apply_checks", **PERSIST)
name = st.text_input("Dataset name (card title)", key="ds_name", **PERSIST)
sel = select_rows(store, include_judged, apply_checks)
st.write(f"**{len(sel.rows)}** examples will be exported."
         + ("" if not sel.excluded else " Left out: " + ", ".join(f"{k}: {v}" for k, v in sel.excluded.most_common())))
must_confirm = exclusions_preview(apply_checks)

b1, b2 = st.columns(2)
with b1:
    if st.button("Prepare download", key="ds_prepare", disabled=not sel.rows or must_confirm, type="primary"):
        try:
            data, res = export_zip(store, fmt, include_judged, apply_checks, name=name, actor=reviewer_name())
            st.session_state["ds_zip"] = (data, res.path, res.card)
        except ShoalError as exc:
            st.error(page_text(exc))
    if "ds_zip" in st.session_state:
        data, fname, card = st.session_state["ds_zip"]
        st.download_button(f"Download {fname}", data, file_name=fname, mime="application/zip", key="ds_download")
        with st.expander("Dataset card"):
            st.code(card, language="markdown")
with b2:
    out = st.text_input("…or write to a folder on this machine", key="ds_out", **PERSIST, placeholder="/path/to/my-dataset")
    overwrite = st.checkbox("Overwrite an existing folder", key="ds_overwrite", **PERSIST)
    if st.button("Export to folder", key="ds_export_folder", disabled=not (out and sel.rows) or must_confirm):
        if Path(out).expanduser().exists() and not overwrite:
            st.error(f"{plain(out)} already exists: choose another folder, or tick “Overwrite an existing folder”.")
        else:
            try:
                res = export_dataset(store, fmt, out, include_judged, apply_checks, overwrite=overwrite, name=name,
                                     actor=reviewer_name())
                st.success(f"Wrote {res.n_rows} examples to {plain(res.path)}")
            except ShoalError as exc:
                st.error(page_text(exc))
hub_push_panel(store, reviewer_name())

past = recent_exports(store)
if not past.empty:
    st.caption("Recent exports")
    st.dataframe(past, hide_index=True, width="stretch")
versions_panel(store)
run = latest_run(store, "decontamination")
if run is None:
    st.warning("Decontamination has not been run: the dataset card will say so.")
