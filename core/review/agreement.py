"""Judge vs human agreement: 2x2 tables, agreement rate and Cohen's kappa (the one definition),
and Fleiss' kappa for many raters (people vs people: core.review.people).

The human side is the example's verdict in `reviews`: with overlap that is the agreed or the
adjudicated verdict, so judge–human agreement is measured against the final human word.

A rule the judge gave no answer for is stored as {"answer": "no", "missing": true} (the example
does not pass it); it is neither yes nor no here: per-rule tables leave it out and count it as
`judge_no_answer`."""
from __future__ import annotations

from core.review.filters import QueueFilter, from_clause, where_clause
from core.store import Store


def kappa_from_counts(tp: int, fn: int, fp: int, tn: int) -> float | None:
    """Cohen's kappa of a 2x2 table (judge yes/no x human accept/reject); None when undefined
    (both raters used one label only, so chance agreement is 1)."""
    n = tp + fn + fp + tn
    if n == 0:
        return None
    po = (tp + tn) / n
    pe = ((tp + fn) * (tp + fp) + (fp + tn) * (fn + tn)) / (n * n)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def fleiss_kappa(counts: list[list[int]]) -> float | None:
    """Fleiss' kappa of a subjects x categories table of rating counts (row i: how many raters put
    subject i in each category). Subjects may have different numbers of raters (at least 2; others
    are skipped): P_i uses each subject's own count, p_j pools all ratings. None when undefined
    (no subject with 2+ ratings, or every rating in one category)."""
    rows = [[int(c) for c in row] for row in counts if sum(row) >= 2]
    if not rows:
        return None
    total = sum(sum(r) for r in rows)
    p_j = [sum(r[j] for r in rows) / total for j in range(len(rows[0]))]
    p_bar = sum((sum(c * c for c in r) - sum(r)) / (sum(r) * (sum(r) - 1)) for r in rows) / len(rows)
    p_e = sum(p * p for p in p_j)
    if p_e >= 1.0:
        return None
    return (p_bar - p_e) / (1 - p_e)


def _cell_stats(tp: int, fn: int, fp: int, tn: int) -> dict:
    """tp: judge yes & human accepted; fn: judge no & accepted; fp: judge yes & rejected; tn: both no."""
    n = tp + fn + fp + tn
    return {"n": n, "judge_yes_accepted": tp, "judge_no_accepted": fn, "judge_yes_rejected": fp,
            "judge_no_rejected": tn, "agreement": (tp + tn) / n if n else None,
            "kappa": kappa_from_counts(tp, fn, fp, tn)}


_CELL = {(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}


def _tables(rows: list[dict], key: str | None) -> dict:
    """Rows of (key, judge_yes, human_yes, n) -> key -> cell stats ("all" when key is None)."""
    out: dict = {}
    for r in rows:
        c = out.setdefault(r[key] if key else "all", [0, 0, 0, 0])
        c[_CELL[(bool(r["judge_yes"]), bool(r["human_yes"]))]] += int(r["n"])
    return {k: _cell_stats(*v) for k, v in sorted(out.items())}


def agreement(store: Store, f: QueueFilter | None = None) -> dict:
    """Judge vs human on examples with both a judge verdict and a human accept/reject:
    overall, per task and per rule (a rule's yes/no against the human's accept/reject; answers the
    judge did not give are left out of the rule's table and counted in its `judge_no_answer`, and
    in total in `judge_no_answer`)."""
    f = (f or QueueFilter()).with_(status="reviewed", judge="any", rule=None)
    frm, _ = from_clause(store, f)
    where, p = where_clause(f)
    by_task = store.rows(f"""
        SELECT g.task, j.overall AS judge_yes, r.verdict = 'accepted' AS human_yes, count(*) AS n
        {frm} WHERE {where} AND j.overall IS NOT NULL GROUP BY ALL""", p)
    answers = f"""
        SELECT (e->>'rule') AS rule, lower(e->>'answer') AS answer,
               coalesce(TRY_CAST(e->>'missing' AS BOOLEAN), FALSE) AS missing, human_yes
        FROM (SELECT unnest(CAST(j.rules AS JSON[])) AS e, r.verdict = 'accepted' AS human_yes
              {frm} WHERE {where} AND json_type(j.rules) = 'ARRAY')
        WHERE (e->>'rule') IS NOT NULL"""
    by_rule = store.rows(f"""SELECT rule, answer = 'yes' AS judge_yes, human_yes, count(*) AS n
                             FROM ({answers}) WHERE NOT missing AND answer IN ('yes', 'no') GROUP BY ALL""", p)
    no_answer = {r["rule"]: int(r["n"]) for r in store.rows(
        f"SELECT rule, count(*) AS n FROM ({answers}) WHERE missing GROUP BY ALL", p)}
    overall = _tables(by_task, None).get("all", _cell_stats(0, 0, 0, 0))
    per_rule = _tables(by_rule, "rule")
    for rule in no_answer.keys() - per_rule.keys():       # a rule the judge never answered
        per_rule[rule] = _cell_stats(0, 0, 0, 0)
    per_rule = {k: {**v, "judge_no_answer": no_answer.get(k, 0)} for k, v in sorted(per_rule.items())}
    return {"overall": overall, "per_task": _tables(by_task, "task"), "per_rule": per_rule,
            "judge_no_answer": sum(no_answer.values())}


def cell_filter(base: QueueFilter, judge_yes: bool, human_accepted: bool, task: str | None = None,
                rule: str | None = None) -> QueueFilter:
    """The queue filter that lists the examples behind one agreement cell."""
    f = base.with_(status="accepted" if human_accepted else "rejected")
    if task:
        f = f.with_(tasks=(task,))
    if rule:
        return f.with_(judge="any", rule=rule, rule_answer="yes" if judge_yes else "no")
    return f.with_(judge="passed" if judge_yes else "failed", rule=None)
