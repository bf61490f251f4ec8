"""Agreement between people: Cohen's kappa per pair of reviewers, Fleiss' kappa over everyone
(overall, per task, per reject reason), each human's verdict against the judge's rules, and every
reviewer's progress and speed. Every cell lists the examples behind it (at most `MAX_IDS`).

It reads the reviewers' own responses (`review_responses`, accept/reject only; a skip is not a
rating). Judge–human agreement against the final (agreed or adjudicated) verdict is
core.review.agreement.agreement().
"""
from __future__ import annotations

from itertools import combinations
from typing import Any

import pandas as pd

from core.review.agreement import fleiss_kappa, kappa_from_counts
from core.review.common import loads
from core.store import Store

MAX_IDS = 200
BREAK_SECONDS = 15 * 60   # a gap longer than this between two responses is a break, not work


def _responses(store: Store, task: str | None = None) -> pd.DataFrame:
    where, p = ("AND g.task = ?", [task]) if task else ("", [])
    df = store.df(f"""
        SELECT rr.generation_id, g.task, rr.reviewer, rr.verdict, rr.reasons, rr.opened_at, rr.updated_at
        FROM review_responses rr JOIN generations g ON g.id = rr.generation_id
        WHERE rr.verdict IN ('accepted', 'rejected') {where}
        ORDER BY rr.generation_id, rr.reviewer""", p)
    df["reasons"] = [set(loads(x) or []) if x is not None else set() for x in df["reasons"]]
    return df


def _ids(s) -> list[int]:
    return [int(x) for x in list(s)[:MAX_IDS]]


def pairwise(df: pd.DataFrame) -> list[dict]:
    """Cohen's kappa for every pair of reviewers on the examples both rated."""
    by = {r: g.set_index("generation_id")["verdict"] for r, g in df.groupby("reviewer")}
    out = []
    for a, b in combinations(sorted(by), 2):
        both = pd.concat([by[a].rename("a"), by[b].rename("b")], axis=1, join="inner")
        if both.empty:
            continue
        cells = {"both_accepted": both[(both.a == "accepted") & (both.b == "accepted")].index,
                 "a_accepted_b_rejected": both[(both.a == "accepted") & (both.b == "rejected")].index,
                 "a_rejected_b_accepted": both[(both.a == "rejected") & (both.b == "accepted")].index,
                 "both_rejected": both[(both.a == "rejected") & (both.b == "rejected")].index}
        tp, fp, fn, tn = (len(cells[k]) for k in ("both_accepted", "a_accepted_b_rejected",
                                                    "a_rejected_b_accepted", "both_rejected"))
        n = tp + fp + fn + tn
        out.append({"a": a, "b": b, "n": n, **{k: len(v) for k, v in cells.items()},
                    "agreement": (tp + tn) / n, "kappa": kappa_from_counts(tp, fn, fp, tn),
                    "examples": {k: _ids(v) for k, v in cells.items()}})
    return out


def _fleiss_block(df: pd.DataFrame) -> dict:
    """Fleiss' kappa (accept/reject) over the examples with 2+ ratings, and the split ones."""
    counts = df.groupby("generation_id")["verdict"].agg(
        accepts=lambda v: int((v == "accepted").sum()), rejects=lambda v: int((v == "rejected").sum()))
    counts = counts[(counts.accepts + counts.rejects) >= 2]
    split = counts[(counts.accepts > 0) & (counts.rejects > 0)].index
    return {"n_examples": int(len(counts)), "n_ratings": int((counts.accepts + counts.rejects).sum()),
            "kappa": fleiss_kappa(counts[["accepts", "rejects"]].values.tolist()),
            "agreed": int(len(counts) - len(split)), "split": int(len(split)), "split_examples": _ids(split)}


def _per_reason(df: pd.DataFrame) -> dict:
    """Per reject reason: Fleiss' kappa of "cited it" vs "did not" among the ratings of examples
    with 2+ ratings, and the examples where the raters split on it."""
    multi = df[df.groupby("generation_id")["reviewer"].transform("count") >= 2]
    reasons = sorted({r for rs in multi["reasons"] for r in rs})
    out = {}
    for reason in reasons:
        cited = multi.assign(c=[reason in rs for rs in multi["reasons"]]).groupby("generation_id")["c"]
        table = pd.DataFrame({"yes": cited.sum().astype(int), "n": cited.count()})
        table["no"] = table.n - table.yes
        split = table[(table.yes > 0) & (table.no > 0)].index
        out[reason] = {"n_examples": int(len(table)), "cited": int(table.yes.sum()),
                       "kappa": fleiss_kappa(table[["yes", "no"]].values.tolist()), "split_examples": _ids(split)}
    return out


def _per_rule(store: Store, df: pd.DataFrame) -> dict:
    """Each reviewer's verdict against each judge rule's answer (rule failed vs rejected)."""
    if df.empty:
        return {}
    rules = store.df("""
        SELECT j.generation_id, (e->>'rule') AS rule, lower(e->>'answer') = 'no' AS failed
        FROM (SELECT generation_id, unnest(CAST(rules AS JSON[])) AS e FROM latest_judgments
              WHERE json_type(rules) = 'ARRAY' AND generation_id IN (SELECT generation_id FROM review_responses)) j
        WHERE lower(e->>'answer') IN ('yes', 'no') AND (e->>'rule') IS NOT NULL""")
    m = df.merge(rules, on="generation_id")
    out = {}
    for rule, g in m.groupby("rule"):
        rej = g.verdict == "rejected"
        cells = {"failed_rejected": g[g.failed & rej], "failed_accepted": g[g.failed & ~rej],
                 "passed_rejected": g[~g.failed & rej], "passed_accepted": g[~g.failed & ~rej]}
        tp, fn, fp, tn = (len(cells[k]) for k in ("failed_rejected", "passed_rejected", "failed_accepted",
                                                    "passed_accepted"))
        out[rule] = {"n": len(g), **{k: len(v) for k, v in cells.items()}, "agreement": (tp + tn) / len(g),
                     "kappa": kappa_from_counts(tp, fn, fp, tn),
                     "examples": {k: _ids(v.generation_id.unique()) for k, v in cells.items()}}
    return out


def progress(store: Store) -> list[dict]:
    """Per reviewer: assigned, done, still to do, verdict counts, seconds per example, examples per hour."""
    rows = store.rows("""
        WITH mine AS (
            SELECT a.reviewer, count(*) AS assigned,
                   count(*) FILTER (WHERE rr.verdict IN ('accepted', 'rejected') OR adj.generation_id IS NOT NULL
                                    OR (a.needed <= 1 AND r.verdict IN ('accepted', 'rejected'))) AS assigned_done
            FROM assignments a
            LEFT JOIN review_responses rr ON rr.generation_id = a.generation_id AND rr.reviewer = a.reviewer
            LEFT JOIN adjudications adj ON adj.generation_id = a.generation_id
            LEFT JOIN reviews r ON r.generation_id = a.generation_id
            GROUP BY 1),
        resp AS (
            SELECT reviewer, count(*) FILTER (WHERE verdict = 'accepted') AS accepted,
                   count(*) FILTER (WHERE verdict = 'rejected') AS rejected,
                   count(*) FILTER (WHERE verdict = 'skipped') AS skipped,
                   min(updated_at) AS first_at, max(updated_at) AS last_at,
                   median(epoch(updated_at) - epoch(opened_at)) FILTER (WHERE opened_at IS NOT NULL
                          AND updated_at >= opened_at) AS opened_median
            FROM review_responses GROUP BY 1)
        SELECT coalesce(m.reviewer, x.reviewer) AS reviewer, coalesce(m.assigned, 0) AS assigned,
               coalesce(m.assigned_done, 0) AS assigned_done, coalesce(x.accepted, 0) AS accepted,
               coalesce(x.rejected, 0) AS rejected, coalesce(x.skipped, 0) AS skipped,
               x.first_at, x.last_at, x.opened_median
        FROM mine m FULL OUTER JOIN resp x ON x.reviewer = m.reviewer ORDER BY 1""")
    gaps = store.df(f"""
        SELECT reviewer, median(gap) AS gap_median, sum(gap) AS work_seconds, count(*) AS n_gaps FROM (
            SELECT reviewer, epoch(updated_at) - epoch(lag(updated_at) OVER (PARTITION BY reviewer ORDER BY updated_at)) AS gap
            FROM review_responses) WHERE gap IS NOT NULL AND gap <= {BREAK_SECONDS} GROUP BY 1""")
    gaps = gaps.set_index("reviewer").to_dict("index")
    out = []
    for r in rows:
        g = gaps.get(r["reviewer"], {})
        per_example = r["opened_median"] if r["opened_median"] is not None else g.get("gap_median")
        work = g.get("work_seconds") or 0
        out.append({"reviewer": r["reviewer"], "assigned": int(r["assigned"]), "done": int(r["assigned_done"]),
                    "to_do": int(r["assigned"]) - int(r["assigned_done"]), "accepted": int(r["accepted"]),
                    "rejected": int(r["rejected"]), "skipped": int(r["skipped"]),
                    "seconds_per_example": None if per_example is None or pd.isna(per_example) else float(per_example),
                    "per_hour": (g.get("n_gaps", 0) / work * 3600) if work else None,
                    "first_at": r["first_at"], "last_at": r["last_at"]})
    return out


def people_agreement(store: Store, task: str | None = None) -> dict:
    """Everything the agreement view shows about people (optionally for one task)."""
    df = _responses(store, task)
    per_task = {t: _fleiss_block(g) for t, g in df.groupby("task")} if not df.empty else {}
    empty: dict[str, Any] = {"n_examples": 0, "n_ratings": 0, "kappa": None, "agreed": 0, "split": 0, "split_examples": []}
    return {"reviewers": sorted(df["reviewer"].unique().tolist()) if not df.empty else [],
            "pairs": pairwise(df) if not df.empty else [],
            "fleiss": _fleiss_block(df) if not df.empty else empty,
            "per_task": per_task,
            "per_reason": _per_reason(df) if not df.empty else {},
            "per_rule": _per_rule(store, df),
            "progress": progress(store)}
