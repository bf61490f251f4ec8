"""Dataset page: calibrate the judge against the verdicts reviewers gave (core.dataset.judge_eval).

Choose one or two judge prompt versions and a judge model; "Evaluate judge" runs them over the
gold set (every example a person accepted or rejected, or a seeded sample of it) in a background
task through the normal cached, paced client. Runs are shown side by side (accuracy, precision
and recall of accept, Cohen's kappa overall / per task / per rule, the disagreeing examples), and
"Use this version" makes a version's judge the one new jobs use (the function `shoal judge use` calls).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.background import TaskRecord, is_running
from core.dataset import judge_eval as je
from core.errors import ShoalError
from core.llm.concurrency import DEFAULT_CONCURRENCY
from ui.background import task_panel
from ui.common import reviewer_name
from ui.text import page_text, plain

CURRENT = "current"
SHOWN_DISAGREEMENTS = 200


def _f(v, pct: bool = False) -> str:
    return "–" if v is None else (f"{v:.0%}" if pct else f"{v:.2f}")


def _progress(rec: TaskRecord) -> str:
    return f"{rec.stage or ''} {rec.message} {rec.done}/{rec.total or '?'}"


def _default_model(store) -> str:
    """The judge model the newest job used (the Generate page's choice), else the environment's."""
    try:
        return je.judge_profile(None, start_local=False, store=store).model or ""
    except ShoalError:
        return ""


def _version_label(v, choices: dict) -> str:
    if v == CURRENT:
        return "current version of each task"
    return f"v{v} ({', '.join(choices.get(v, []))})"


def _form(store, gold_n: int, tasks: list[str]) -> None:
    choices = {c["version"]: c["tasks"] for c in je.version_choices(store)}
    running = is_running(store, je.JUDGE_EVAL.name)
    with st.form("ds_judge_form"):
        c = st.columns([3, 2])
        versions = c[0].multiselect("Judge prompt versions (one, or two side by side)", [CURRENT, *choices],
                                    default=[CURRENT], max_selections=2, key="ds_judge_versions",
                                    format_func=lambda v: _version_label(v, choices),
                                    help="A version's judge is its rules, judge template and judge system prompt "
                                         "(edited on the Generate page, Prompts tab).")
        model = c[1].text_input("Judge model", _default_model(store), key="ds_judge_model",
                                help="The judge endpoint of the Generate page's settings, with this model name.")
        c = st.columns(4)
        use_tasks = c[0].multiselect("Tasks", tasks, default=tasks, key="ds_judge_tasks")
        sample = c[1].number_input("Sample (0 = whole gold set)", 0, max(gold_n, 1), 0, key="ds_judge_sample",
                                   help="Evaluate a seeded random sample of the gold set drawn for the purpose.")
        seed = c[2].number_input("Seed", 0, 10_000, 0, key="ds_judge_seed")
        concurrency = c[3].number_input("Parallel requests", 1, 64, DEFAULT_CONCURRENCY, key="ds_judge_concurrency")
        st.caption("Every call goes through the cached, rate-limited client: evaluating the same version and model "
                   "again costs nothing. It runs in the background; you can leave the page.")
        submitted = st.form_submit_button("Evaluate judge", type="primary", disabled=running or not gold_n)
    if submitted and not running:
        try:
            je.start_judge_eval(store, [None if v == CURRENT else int(v) for v in versions] or [None],
                                model.strip() or None, tasks=use_tasks or None, sample=int(sample) or None,
                                seed=int(seed), concurrency=int(concurrency), actor=reviewer_name())
        except ShoalError as exc:
            st.error(page_text(exc))
        else:
            st.rerun()


def _remember_new_runs(rec: TaskRecord) -> None:
    ids = (rec.result or {}).get("eval_ids")
    if ids:
        st.session_state["ds_judge_runs"] = ids


def _headline(col, store, r: dict, in_use: dict) -> None:
    o = r["overall"]
    version = r["version"]
    col.markdown(f"**{'v' + str(version) if version is not None else 'current version'}** · "
                 f"{plain(r['judge_model'])} · run #{r['eval_id']} · {r['n_gold']} gold examples")
    m = col.columns(4)
    m[0].metric("Accuracy", _f(o.get("accuracy"), pct=True))
    m[1].metric("Precision (accept)", _f(o.get("precision_accept")))
    m[2].metric("Recall (accept)", _f(o.get("recall_accept")))
    m[3].metric("Cohen's κ (gold set)", _f(o.get("kappa")))
    col.caption(f"{r.get('n_unreadable', 0)} unreadable replies; the judge gave no answer to "
                f"{r.get('n_missing_rule_answers', 0)} rules (left out of the per-rule figures); "
                f"{r['calls']} requests, ${r['cost_usd'] or 0:.4f}.")
    if version is None:
        col.caption("Evaluated each task's version current at the time.")
        return
    already = bool(in_use) and all(version in j["judge_of"] for t, j in in_use.items() if t in r["prompt_version_ids"])
    if col.button("Judges new jobs now" if already else f"Use this version (v{version}) for new jobs",
                  key=f"ds_judge_use_{r['eval_id']}", disabled=already):
        try:
            out = je.use_judge_version(store, int(version), tasks=list(r["prompt_version_ids"]),
                                       actor=reviewer_name())
        except ShoalError as exc:
            col.error(page_text(exc))
        else:
            st.session_state["ds_judge_used"] = {t: x["version"] for t, x in out.items()}
            st.rerun()


def _tables(reports: list[dict]) -> None:
    cmp = je.compare_evals(reports)
    st.markdown("**Side by side** (overall figures, then Cohen's κ per task and per rule)")
    st.dataframe(pd.DataFrame(cmp["rows"]), hide_index=True, width="stretch", key="ds_judge_compare")
    for r in reports:
        label = f"v{r['version'] if r['version'] is not None else 'current'} (#{r['eval_id']})"
        with st.expander(f"{label}: per rule and per task, {len(r['disagreements'])} disagreements"):
            rules = pd.DataFrame([{"rule": k, **v} for k, v in r.get("per_rule", {}).items()])
            if not rules.empty:
                st.markdown("**Per rule** (the rule's yes/no against the human's accept/reject; "
                            "`judge_no_answer`: answers the judge did not give, counted apart)")
                st.dataframe(rules, hide_index=True, width="stretch", key=f"ds_judge_rules_{r['eval_id']}")
            st.markdown("**Per task**")
            st.dataframe(pd.DataFrame([{"task": k, **v} for k, v in r.get("per_task", {}).items()]),
                         hide_index=True, width="stretch", key=f"ds_judge_tasks_{r['eval_id']}")
            st.markdown("**Where judge and human disagree**")
            dis = pd.DataFrame([{**d, "failed_rules": "; ".join(d["failed_rules"]),
                                 "missing_rules": "; ".join(d["missing_rules"])}
                                for d in r["disagreements"][:SHOWN_DISAGREEMENTS]])
            if dis.empty:
                st.write("None: the judge agrees with every human verdict.")
            else:
                st.dataframe(dis, hide_index=True, width="stretch", key=f"ds_judge_dis_{r['eval_id']}")


def judge_eval_panel(store) -> None:
    st.header("Judge calibration")
    st.caption("Hold a judge prompt version and model against the verdicts your reviewers gave, compare two, and "
               "keep the better one. The gold set is every example a person accepted or rejected.")
    counts = je.gold_counts(store)
    gold_n = sum(sum(v.values()) for v in counts.values())
    tasks = sorted(counts)
    g = st.columns(3)
    g[0].metric("Gold examples", gold_n)
    g[1].metric("Accepted by a person", sum(v["accepted"] for v in counts.values()))
    g[2].metric("Rejected by a person", sum(v["rejected"] for v in counts.values()))
    if not gold_n:
        st.info("No gold set yet: accept or reject some examples on the **Review** page first.")
        return
    in_use = je.current_judges(store, tasks)
    st.caption("Judge for new jobs: " + "; ".join(
        f"{t} v{j['version']} (judge of v{', v'.join(map(str, j['judge_of']))})" for t, j in in_use.items()))
    if st.session_state.pop("ds_judge_used", None):
        st.success("New jobs now judge with that version (a new current prompt version per task; its generator "
                   "part is unchanged).")
    _form(store, gold_n, tasks)
    task_panel(store, je.JUDGE_EVAL.name, "ds_judge", _progress, fmt=page_text, on_finish=_remember_new_runs)
    runs = [r for r in je.list_evals(store) if r["status"] == "done"]
    if not runs:
        return
    by_id = {r["eval_id"]: r for r in runs}
    default = [i for i in st.session_state.get("ds_judge_runs", []) if i in by_id] or [r["eval_id"] for r in runs[:2]]
    chosen = st.multiselect("Runs to compare", list(by_id), default=default, max_selections=2, key="ds_judge_pick",
                            format_func=lambda i: f"#{i} v{by_id[i]['version'] or 'current'} · "
                                                  f"{by_id[i]['judge_model']} · κ {_f(by_id[i]['kappa'])} · "
                                                  f"{by_id[i]['created_at'][:16]}")
    if not chosen:
        return
    reports = [je.eval_report(store, int(i)) for i in chosen]
    cols = st.columns(len(reports))
    for col, r in zip(cols, reports):
        _headline(col, store, r, in_use)
    _tables(reports)
