"""The Review page's agreement view: how often the judge's verdict matches the reviewers' (with a
confusion matrix whose cells open their examples), and, for adjudicators, agreement between reviewers."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import review as rv
from core.store import Store
from ui.review.state import SS, current_filter, on_filter_change, open_example


def _number(v: float | None) -> str:
    """A kappa or an agreement share as shown in the tables ("–" when there is none)."""
    return "–" if v is None else f"{v:.2f}"


def show_cell(store: Store, f: rv.QueueFilter) -> None:
    """Agreement drill-down: put the cell's filter in the sidebar and review it."""
    SS.update({"rv_tasks": list(f.tasks), "rv_judge": f.judge, "rv_rule": f.rule or "",
               "rv_rule_answer": f.rule_answer, "rv_status": f.status, "rv_mode": "Review"})
    on_filter_change(store)


def agreement_panel(store: Store) -> None:
    base = current_filter()
    res = rv.agreement(store, base)
    o = res["overall"]
    st.markdown("How often the judge's verdict matches yours, on examples that have both (the sidebar filter "
                "applies, except status/judge/rule). High agreement and kappa mean the judge can be trusted on "
                "the rest.")
    if o["n"] == 0:
        st.info("No example has both a judge verdict and a human accept/reject yet.")
        return
    m = st.columns(3)
    m[0].metric("Examples with both", o["n"])
    m[1].metric("Agreement", _number(o["agreement"]))
    m[2].metric("Cohen's kappa", _number(o["kappa"]))
    scopes = ["all"] + [f"task: {t}" for t in res["per_task"]] + [f"rule: {r}" for r in res["per_rule"]]
    scope = st.selectbox("Confusion matrix for", scopes, key="rv_agree_scope")
    task = scope[6:] if scope.startswith("task: ") else None
    rule = scope[6:] if scope.startswith("rule: ") else None
    cell = o if scope == "all" else (res["per_task"][task] if task else res["per_rule"][rule])
    st.caption(f"n={cell['n']} · agreement {_number(cell['agreement'])} · kappa {_number(cell['kappa'])} — "
               "click a cell to review its examples.")
    _confusion_matrix(store, base, cell, task, rule)
    st.subheader("Per task")
    st.dataframe(pd.DataFrame([{"task": k, **v} for k, v in res["per_task"].items()]), hide_index=True)
    st.subheader("Per rule")
    st.dataframe(pd.DataFrame([{"rule": k, **v} for k, v in res["per_rule"].items()]), hide_index=True)


def _confusion_matrix(store: Store, base: rv.QueueFilter, cell: dict, task: str | None, rule: str | None) -> None:
    """Judge (rows) against human (columns); each count is a button that reviews its examples."""
    hdr = st.columns([2, 2, 2])
    hdr[1].markdown("**human accepted**")
    hdr[2].markdown("**human rejected**")
    judge_word = "rule says yes" if rule else "judge pass"
    for judge_yes in (True, False):
        row = st.columns([2, 2, 2])
        row[0].markdown(f"**{judge_word if judge_yes else judge_word.replace('yes', 'no').replace('pass', 'fail')}**")
        for col, human in ((row[1], True), (row[2], False)):
            key = f"judge_{'yes' if judge_yes else 'no'}_{'accepted' if human else 'rejected'}"
            col.button(str(cell[key]), key=f"rv_cell_{key}", width="stretch", on_click=show_cell,
                       args=(store, rv.cell_filter(base, judge_yes, human, task=task, rule=rule)))


# --------------------------------------------------------------------------- agreement between people

def people_cells(res: dict) -> dict[str, list[int]]:
    """Every cell of the people tables that lists examples: label -> example ids."""
    cells = {}
    for p in res["pairs"]:
        for k, ids in p["examples"].items():
            cells[f"{p['a']} vs {p['b']}: {k.replace('a_', p['a'] + ' ').replace('b_', p['b'] + ' ')}"] = ids
    cells["all reviewers: split verdicts"] = res["fleiss"]["split_examples"]
    for t, b in res["per_task"].items():
        cells[f"task {t}: split verdicts"] = b["split_examples"]
    for r, b in res["per_reason"].items():
        cells[f"reason '{r}': split"] = b["split_examples"]
    for r, b in res["per_rule"].items():
        for k, ids in b["examples"].items():
            cells[f"rule '{r}': {k.replace('_', ' & ')}"] = ids
    return {k: v for k, v in cells.items() if v}


def _without(block: dict, key: str) -> dict:
    return {k: v for k, v in block.items() if k != key}


def people_panel(store: Store) -> None:
    st.subheader("Between reviewers")
    res = rv.people_agreement(store)
    fl = res["fleiss"]
    m = st.columns(4)
    m[0].metric("Reviewers", len(res["reviewers"]))
    m[1].metric("Examples with 2+ verdicts", fl["n_examples"])
    m[2].metric("Split", fl["split"])
    m[3].metric("Fleiss' kappa", _number(fl["kappa"]))
    if res["pairs"]:
        st.markdown("**Cohen's kappa per pair** (each pair on the examples both reviewed)")
        st.dataframe(pd.DataFrame([_without(p, "examples") for p in res["pairs"]]),
                     hide_index=True, key="rv_people_pairs")
    if res["per_task"]:
        st.markdown("**Per task** (Fleiss' kappa)")
        st.dataframe(pd.DataFrame([{"task": t, **_without(b, "split_examples")}
                                   for t, b in res["per_task"].items()]), hide_index=True)
    if res["per_reason"]:
        st.markdown("**Per reject reason** (did the reviewers cite it? Fleiss' kappa)")
        st.dataframe(pd.DataFrame([{"reason": r, **_without(b, "split_examples")}
                                   for r, b in res["per_reason"].items()]), hide_index=True)
    if res["per_rule"]:
        st.markdown("**Every reviewer's verdict against the judge's rules** (rule failed vs rejected)")
        st.dataframe(pd.DataFrame([{"rule": r, **_without(b, "examples")}
                                   for r, b in res["per_rule"].items()]), hide_index=True)
    _cell_examples(store, res)
    if res["progress"]:
        st.markdown("**Progress and speed**")
        st.dataframe(pd.DataFrame(res["progress"]), hide_index=True)


def _cell_examples(store: Store, res: dict) -> None:
    """Pick a cell of the tables above and open one of its examples."""
    cells = people_cells(res)
    if cells:
        st.markdown("**Examples behind a cell**")
        c1, c2, c3 = st.columns([3, 1, 1])
        cell = c1.selectbox("Cell", list(cells), key="rv_people_cell")
        gid = c2.selectbox("Example", cells[cell], key="rv_people_gid", format_func=lambda g: f"#{g}")
        c3.button("Open", key="rv_people_open", on_click=open_example, args=(store, gid), width="stretch")
    elif not res["pairs"]:
        st.info("No example has verdicts from two reviewers yet. Give examples an overlap on the Team page.")
