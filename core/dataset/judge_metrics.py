"""Judge vs human, in figures: accuracy, precision and recall of "accept" and Cohen's kappa, overall,
per task and per rule (core.dataset.judge_eval stores them with each evaluation)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from core.review import kappa_from_counts


def binary_stats(tp: int, fn: int, fp: int, tn: int) -> dict:
    """tp: judge yes & human accepted; fn: judge no & accepted; fp: judge yes & rejected; tn: both no.
    Accuracy, precision and recall of "accept", Cohen's kappa (core.review's definition)."""
    n = tp + fn + fp + tn
    return {"n": n, "tp": tp, "fn": fn, "fp": fp, "tn": tn,
            "accuracy": (tp + tn) / n if n else None,
            "precision_accept": tp / (tp + fp) if tp + fp else None,
            "recall_accept": tp / (tp + fn) if tp + fn else None,
            "kappa": kappa_from_counts(tp, fn, fp, tn)}


def _count(pairs: Iterable[tuple[Any, bool, bool]]) -> dict:
    """(key, judge_yes, human_yes) -> key -> binary_stats."""
    cells: dict[Any, list[int]] = {}
    for key, judge_yes, human_yes in pairs:
        c = cells.setdefault(key, [0, 0, 0, 0])
        c[{(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}[(judge_yes, human_yes)]] += 1
    return {k: binary_stats(*v) for k, v in sorted(cells.items())}


def metrics(items: list[dict]) -> dict:
    """Judge vs human on the items whose judge reply was read: overall, per task, per rule (a rule's
    yes/no against the human's accept/reject; a rule the judge left unanswered is neither: it is
    counted in that rule's `judge_no_answer` and in `n_missing_rule_answers`)."""
    read = [it for it in items if it["judge_overall"] is not None]
    overall = _count(("all", bool(it["judge_overall"]), it["human_verdict"] == "accepted") for it in read)
    per_task = _count((it["task"], bool(it["judge_overall"]), it["human_verdict"] == "accepted") for it in read)
    rule_pairs: list[tuple] = []
    missing = 0
    no_answer: Counter[str] = Counter()
    for it in read:
        for r in it["rules"] or []:
            if r.get("missing"):
                missing += 1
                no_answer[r["rule"]] += 1
                continue
            rule_pairs.append((r["rule"], r["answer"] == "yes", it["human_verdict"] == "accepted"))
    per_rule = _count(rule_pairs)
    for rule in no_answer.keys() - per_rule.keys():       # a rule the judge never answered
        per_rule[rule] = binary_stats(0, 0, 0, 0)
    per_rule = {k: {**v, "judge_no_answer": no_answer.get(k, 0)} for k, v in sorted(per_rule.items())}
    return {"overall": overall.get("all", binary_stats(0, 0, 0, 0)), "per_task": per_task,
            "per_rule": per_rule, "n_items": len(items), "n_unreadable": len(items) - len(read),
            "n_missing_rule_answers": missing}
