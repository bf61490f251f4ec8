"""Dataset page: semantic duplicates and leaks (core.dataset.checks.semantic), next to the MinHash groups.

The thresholds are shown and adjustable; before a threshold takes effect the panel says how many
examples it would leave out of the export (and how many of those a reviewer accepted: those wait
for a confirmation before any export). Runs go through a background task, so leaving the page
does not stop the embedding.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.background import TaskRecord, is_running
from core.dataset.checks import semantic as sem
from core.dataset.checks import semantic_preview
from core.dataset.checks.results import set_override
from core.errors import ShoalError
from ui.background import task_panel
from ui.common import reviewer_name
from ui.text import page_text, plain

GROUPS_SHOWN = 30
LEAKS_PER_PAGE = 10


def _progress(rec: TaskRecord) -> str:
    return f"{rec.stage or ''}: {rec.message} {rec.done}/{rec.total or '?'}"


@st.cache_data(ttl=60, show_spinner="Grouping the cached vectors at this threshold…", max_entries=32)
def _dup_preview(_store, db: str, threshold: float, stamp: tuple) -> dict:
    return semantic_preview.preview_duplicates(_store, threshold)


def _effect(p: dict, what: str) -> str:
    """One sentence: what this threshold would leave out, against what is left out now."""
    text = (f"At **{p['threshold']:.2f}**, {what} would leave **{p['n_excluded']}** examples out of the export "
            f"(now {p['n_excluded_now']}: {len(p['newly_excluded'])} more, {len(p['no_longer_excluded'])} back in).")
    if p["n_excluded_accepted"]:
        text += (f" {p['n_excluded_accepted']} of them were accepted by a reviewer: they stay listed under "
                 "*Automatic exclusions* until you confirm leaving them out or keep them in.")
    return text


def _start(store, benchmarks: str, dup: float | None, leak: float | None) -> None:
    try:
        sem.start_semantic_checks(store, benchmarks, dup, leak, actor=reviewer_name())
    except ShoalError as exc:
        st.error(page_text(exc))
    else:
        st.rerun()


def semantic_panel(store, ex: pd.DataFrame, titles: dict, benchmarks: str) -> None:
    """Run, preview and act on the semantic checks. `benchmarks`: the checks form's benchmark spec."""
    st.subheader("Semantic duplicates and leaks")
    st.caption("Two examples that say the same thing in other words, or an example that paraphrases a benchmark "
               "problem with renamed identifiers, share few tokens (MinHash and n-grams miss them) but lie close "
               "together in embedding space. Vectors are cached: a rerun or a new threshold embeds nothing again.")
    running = is_running(store, sem.SEMANTIC_CHECKS.name)
    dup_run, leak_run = sem.latest_semantic_run(store, sem.DUP_KIND), sem.latest_semantic_run(store, sem.LEAK_KIND)
    c = st.columns(2)
    dup_t = c[0].slider("Semantic duplicate threshold (cosine)", 0.70, 1.0,
                        float((dup_run or {}).get("params", {}).get("threshold", sem.DEFAULT_DUP_THRESHOLD)), 0.01,
                        key="ds_sem_dup_t", help="Two examples at least this similar form a group; one is kept.")
    leak_t = c[1].slider("Semantic leak threshold (cosine)", 0.40, 1.0,
                         float((leak_run or {}).get("params", {}).get("threshold", sem.DEFAULT_LEAK_THRESHOLD)), 0.01,
                         key="ds_sem_leak_t", help="An example at least this similar to a benchmark problem is "
                                                   "flagged. On a planted set, 0.62 caught 89% of paraphrased "
                                                   "HumanEval problems and no clean example.")
    with c[0]:
        _duplicate_effect(store, dup_run, dup_t, benchmarks, running)
    with c[1]:
        _leak_effect(store, leak_run, leak_t, benchmarks, running)
    if dup_run is None and leak_run is None:
        st.caption(f"Not run yet. The first run embeds {len(ex)} examples (all-MiniLM-L6-v2, on this machine's "
                   f"CPU) and takes a while; it runs in the background. Benchmarks: {plain(benchmarks)}.")
        if st.button("Run both semantic checks", key="ds_sem_run_both", disabled=running, type="primary"):
            _start(store, benchmarks, dup_t, leak_t)
    task_panel(store, sem.SEMANTIC_CHECKS.name, "ds_sem", _progress, fmt=page_text)
    _groups(store, ex, titles)
    _leaks(store, titles)


def _duplicate_effect(store, run: dict | None, threshold: float, benchmarks: str, running: bool) -> None:
    if run is None:
        st.caption("Semantic duplicates: not run yet.")
        return
    s = run["summary"]
    st.caption(f"Last run {str(run['created_at'])[:16]} at {run['params'].get('threshold')}: {s.get('n_groups')} "
               f"groups, {s.get('n_flagged')} flagged ({plain(run['params'].get('model_key'))}).")
    p = _dup_preview(store, str(store.path), round(threshold, 2), semantic_preview.state_stamp(store))
    if p.get("missing"):
        st.info(f"{p['missing']} examples have no cached vector yet: run the check to embed them, then the effect "
                "of a threshold shows here before it is applied.")
    else:
        st.markdown(_effect(p, f"{p['n_groups']} groups"))
    if st.button(f"Apply {threshold:.2f} to semantic duplicates", key="ds_sem_dup_apply", disabled=running):
        _start(store, benchmarks, threshold, None)


def _leak_effect(store, run: dict | None, threshold: float, benchmarks: str, running: bool) -> None:
    if run is None:
        st.caption("Semantic leaks: not run yet.")
        return
    s = run["summary"]
    st.caption(f"Last run {str(run['created_at'])[:16]} at {run['params'].get('threshold')} against "
               f"{s.get('n_problems')} problems of {plain(', '.join(run['params'].get('benchmarks', [])))}: "
               f"{s.get('n_flagged')} flagged.")
    p = semantic_preview.preview_leaks(store, threshold)
    st.markdown(_effect(p, "the leak check"))
    if p["n_unchecked"]:
        st.caption(f"{p['n_unchecked']} examples are newer than the last run (not counted).")
    if st.button(f"Apply {threshold:.2f} to semantic leaks", key="ds_sem_leak_apply", disabled=running):
        _start(store, benchmarks, None, threshold)


def _groups(store, ex: pd.DataFrame, titles: dict) -> None:
    groups = sem.semantic_groups(store)
    verdict = ex.set_index("generation_id")["verdict"].fillna("unreviewed").to_dict()
    with st.expander(f"Semantic duplicate groups: {len(groups)} (keep one of each)", expanded=0 < len(groups) <= 3):
        if not groups:
            st.write("No semantic duplicates (or the check has not run).")
        for g in groups[:GROUPS_SHOWN]:
            _group(store, g, verdict, titles)
        if len(groups) > GROUPS_SHOWN:
            st.caption(f"Showing {GROUPS_SHOWN} of {len(groups)} groups.")


def _group(store, g: dict, verdict: dict, titles: dict) -> None:
    members = [m["generation_id"] for m in g["members"]]
    st.markdown(f"**Group of {len(members)}** — kept now: #{g['keep']}; every other member is at least the "
                f"threshold similar to #{g['keep']}")
    st.dataframe(pd.DataFrame([{"example": m["generation_id"], "kept": m["passed"], "overridden": m["overridden"],
                                "cosine to kept": m["similarity"], "verdict": verdict.get(m["generation_id"]),
                                "instruction": titles.get(m["generation_id"], "")} for m in g["members"]]),
                 hide_index=True, width="stretch")
    k1, k2 = st.columns([3, 1])
    keep = k1.selectbox("Keep", members, index=members.index(g["keep"]) if g["keep"] in members else 0,
                        key=f"ds_sem_keep_{g['group']}", format_func=lambda x: f"#{x} {titles.get(x, '')}")
    accepted = [m for m in members if m != keep and verdict.get(m) == "accepted"]
    sure = True
    if accepted:
        sure = k1.checkbox(f"Also reject {', '.join(f'#{m}' for m in accepted)}, which a reviewer accepted",
                           key=f"ds_sem_sure_{g['group']}")
    if k2.button("Keep one, reject the rest", key=f"ds_sem_keep_btn_{g['group']}", disabled=not sure):
        try:
            out = sem.keep_semantic(store, members, int(keep), reviewer=reviewer_name())
            st.toast(f"Kept #{out['kept']}, rejected {len(out['rejected'])}")
            st.rerun()
        except ShoalError as exc:
            st.error(page_text(exc))


def _leaks(store, titles: dict) -> None:
    leaks = sem.semantic_leaks(store)
    with st.expander(f"Semantic benchmark leaks: {len(leaks)} flagged", expanded=0 < len(leaks) <= 3):
        if not leaks:
            st.write("No example is close to a benchmark problem (or the check has not run).")
            return
        st.dataframe(pd.DataFrame([{k: r[k] for k in ("generation_id", "similarity", "benchmark", "item",
                                                         "overridden")} for r in leaks]),
                     hide_index=True, width="stretch", key="ds_sem_leak_table")
        pages = (len(leaks) - 1) // LEAKS_PER_PAGE + 1
        page = st.number_input(f"Side by side, page (of {pages})", 1, pages, 1, key="ds_sem_leak_page") \
            if pages > 1 else 1
        for r in leaks[(page - 1) * LEAKS_PER_PAGE:page * LEAKS_PER_PAGE]:
            st.markdown(f"**#{r['generation_id']}** {plain(titles.get(r['generation_id'], ''))} — cosine "
                        f"**{r['similarity']:.3f}** to {plain(r['benchmark'])} {plain(r['item'])}"
                        + (" (overridden: stays in the export)" if r["overridden"] else ""))
            left, right = st.columns(2)
            left.caption("The example")
            left.code(r["example_text"], language=None, wrap_lines=True)
            right.caption(plain(f"{r['benchmark']} {r['item']}"))
            right.code(r["benchmark_text"], language=None, wrap_lines=True)
        pick = st.multiselect("Examples", [r["generation_id"] for r in leaks], key="ds_sem_leak_pick",
                              format_func=lambda g: f"#{g} {titles.get(g, '')}")
        b1, b2 = st.columns(2)
        for col, label, value, key in ((b1, "Allow in export anyway (override)", True, "ds_sem_leak_override"),
                                       (b2, "Remove override", False, "ds_sem_leak_unoverride")):
            if col.button(label, key=key, disabled=not pick):
                for g in pick:
                    set_override(store, int(g), sem.LEAK_KIND, value, actor=reviewer_name())
                st.rerun()
