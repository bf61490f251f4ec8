"""The Evaluate page: start an evaluation (a background task), the runs with pass@1 and its interval,
and the paired comparison of two runs. Every figure comes from core.evaluate."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import evaluate as ev
from core.background import TaskRecord, is_running
from core.errors import ShoalError
from core.evaluate.tasks import EVALUATION, start_evaluation
from core.store import Store
from ui.background import task_panel
from ui.text import plain

BENCH_LABELS = {"humaneval": "HumanEval (164 problems, built in)", "mbpp": "MBPP (a JSONL file you give)",
                "heldout": "Held-out split of your accepted examples (their generated tests)"}


def _pct(v) -> str:
    return "–" if v is None else f"{v:.1%}"


def _interval(m: dict) -> str:
    ci = m.get("pass_at_1_ci")
    return "–" if not ci else f"{_pct(ci[0])} – {_pct(ci[1])}"


def _progress(rec: TaskRecord) -> str:
    return f"{rec.stage or ''}: {rec.message} {rec.done}/{rec.total or '?'}"


def _result(rec: TaskRecord, fmt) -> None:
    summary = (rec.result or {}).get("summary")
    if summary:
        st.success(fmt(summary))


def start_form(store: Store, allowed: bool) -> None:
    """Benchmark, size, samples and the endpoint; "Evaluate" starts it in the background."""
    running = is_running(store, EVALUATION.name)
    with st.form("ev_form"):
        c = st.columns([3, 2, 1, 1])
        bench = c[0].selectbox("Benchmark", list(BENCH_LABELS), format_func=BENCH_LABELS.get, key="ev_bench")
        path = c[1].text_input("MBPP file (for MBPP)", key="ev_mbpp", placeholder="/path/to/mbpp.jsonl")
        limit = c[2].number_input("Problems (0: all)", 0, 10_000, 20, key="ev_limit")
        n = c[3].number_input("Samples each", 1, 200, 1, key="ev_n")
        c = st.columns(2)
        base_url = c[0].text_input("Endpoint (blank: the Generate page's generator, or the embedded model)",
                                   key="ev_base_url", placeholder="http://localhost:8000/v1")
        model = c[1].text_input("Model (blank: the endpoint's)", key="ev_model")
        go = st.form_submit_button("Evaluate", type="primary", disabled=running or not allowed,
                                   help=None if allowed else "Your role may not start evaluations.")
    if go:
        spec = ev.EvalSpec(bench, path.strip() or None, int(limit) or None, int(n), [1] + ([int(n)] if n > 1 else []))
        try:
            start_evaluation(store, spec, base_url.strip() or None, model.strip() or None)
            st.rerun()
        except ShoalError as exc:
            st.error(plain(str(exc)))
    task_panel(store, EVALUATION.name, "ev_task", _progress, fmt=plain, show_result=_result)


def runs_table(runs: list[dict]) -> None:
    rows = []
    for r in runs:
        m = r["metrics"] or {}
        rows.append({"run": int(r["id"]), "benchmark": r["benchmark"], "model": r["model"],
                     "problems × samples": f"{r['n_problems']} × {r['n_samples']}", "status": r["status"],
                     "pass@1": _pct(m.get("pass_at_1")), "95% interval": _interval(m),
                     "done": f"{r['samples_done']}/{r['samples_total']}",
                     "solved": m.get("problems_solved"), "seconds": round(float(r["seconds"] or 0), 1)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def comparison(store: Store, runs: list[dict]) -> None:
    """Two runs side by side: the paired difference, its interval, McNemar, and the verdict in words."""
    ids = [int(r["id"]) for r in runs]
    labels = {int(r["id"]): f"#{r['id']} {r['benchmark']} · {r['model']}" for r in runs}
    c = st.columns(2)
    a = c[0].selectbox("Baseline run (A)", ids, index=min(1, len(ids) - 1), format_func=labels.get, key="ev_cmp_a")
    b = c[1].selectbox("Compared run (B)", ids, index=0, format_func=labels.get, key="ev_cmp_b")
    if a == b:
        st.caption("Pick two different runs.")
        return
    try:
        out = ev.compare_runs(store, a, b)
    except ShoalError as exc:
        st.warning(plain(str(exc)))
        return
    m = st.columns(4)
    m[0].metric("pass@1 A", _pct(out["pass_at_1_a"]))
    m[1].metric("pass@1 B", _pct(out["pass_at_1_b"]), delta=f"{out['difference'] * 100:+.1f} pts")
    m[2].metric("95% interval of B − A", f"{out['ci'][0] * 100:+.1f} to {out['ci'][1] * 100:+.1f}")
    m[3].metric("McNemar exact p", f"{out['mcnemar_p']:.3g}")
    (st.success if out["significant"] else st.info)(plain(out["verdict"]))
    with st.expander(f"Problems only one run solves ({out['only_a']} only A, {out['only_b']} only B)"):
        st.write({"only A": out["only_a_problems"], "only B": out["only_b_problems"]})
