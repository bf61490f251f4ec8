"""Under the Generate page's progress bar: the pacing of the job's endpoints and its provider batches.

Pacing per role comes from `core.llm.endpoint.pacing_report`: this process's live rate gate
(`core.llm.gates.pacing_snapshot` figures) while the job runs here, else the last snapshot stored
in DuckDB -- the same figures `shoal jobs --show` prints.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.generate import jobs as J
from core.llm.endpoint import pacing_report
from core.store import Store


def _num(v, unit: str = "") -> str:
    return "?" if v is None else f"{v:,.0f}{unit}"


def pacing_rows(report: list[dict]) -> list[dict]:
    """One row per role: limits and where they came from, tokens per minute used, waiting, 429s."""
    rows = []
    for r in report:
        share = f" ({r['tpm_used']:.0%} of the limit)" if r.get("tpm_used") is not None else ""
        window = r.get("window_s")
        per = "" if not window or abs(window - 60) < 1 else f" per {window:g}s"
        conc = r.get("concurrency_limit")
        rows.append({
            "role": r["role"], "model": r["model"] or "(server default)",
            "limit RPM / TPM": f"{_num(r.get('rpm_limit'))} / {_num(r.get('tpm_limit'))}{per}",
            "limits from": r.get("limits_from") or "nothing yet",
            "tokens / min used": f"{_num(r.get('tokens_per_minute'))}{share}",
            "requests / min": _num(r.get("requests_per_minute")),
            "waited": f"{(r.get('total_wait_s') or 0):.1f} s",
            "429s": int(r.get("rate_limited") or 0),
            "concurrency": "unbounded" if conc is None else str(conc),
            "figures": r["source"]})
    return rows


def pacing_section(store: Store, job_id: int) -> None:
    profiles = J.get_job(store, job_id)["params"].get("profiles") or {}
    report = pacing_report(store, profiles)
    if not any(r["source"] != "none" for r in report):
        st.caption("Pacing: no call has gone through this job's endpoints yet.")
        return
    st.caption("Pacing per endpoint (shared by every job on it): limits, tokens per minute used, waiting, 429s")
    st.dataframe(pd.DataFrame(pacing_rows(report)), hide_index=True, width="stretch")


def batch_section(store: Store, job_id: int) -> None:
    """A batch-mode job's provider batches (ids, status, request counts, cost at the batch price) and
    its rounds (lines sent, what and why, how they came back)."""
    b = J.batch_status(store, job_id)
    if not b["batch"]:
        return
    flight = b["in_flight"]
    st.caption(f"Batch mode: {b['rounds']} round(s) · "
               + (f"{len(flight)} batch(es) in flight" if flight else "nothing in flight")
               + f" · ${b['cost_usd']:.4f} at the batch price")
    if b["batches"]:
        frame = pd.DataFrame([{
            "round": r["round"], "role": r["role"], "batch id": r["provider_batch_id"] or "not yet created",
            "status": r["status"], "completed": r["request_completed"] or 0, "failed": r["request_failed"] or 0,
            "requests": r["request_total"] or r["n_lines"], "cost $": round(float(r["cost_usd"] or 0), 6)}
            for r in b["batches"]])
        st.dataframe(frame, hide_index=True, width="stretch")
    if b.get("round_lines"):
        st.caption("Each round: the lines it sent, what (each item's step) and why, and how they came back")
        st.dataframe(pd.DataFrame([{"round": r["round"], "lines": r["lines"], "sent": _tally(r["sent"]),
                                    "why": _tally(r["why"]), "came back": _tally(r["outcome"])}
                                   for r in b["round_lines"]]), hide_index=True, width="stretch")


def _tally(counts: dict) -> str:
    return ", ".join(f"{k} ×{n}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
