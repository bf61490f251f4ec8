"""Judge vs human per rule: a rule the judge gave no answer for is neither yes nor no."""
from __future__ import annotations

import json

from core.review import kappa_from_counts
from core.review.agreement import agreement
from tests.support.seed_data import add_example, wave

R1, R2 = "The solution is correct.", "The instruction is clear."


def _judged(store, i: int, verdict: str, r1: str | None, r2: str | None) -> int:
    """An example a person decided, judged on two rules (None: the judge left the rule unanswered)."""
    gid = add_example(store, wave(f"Write function {i}.", f"def f{i}():\n    return {i}\n"), verdict=verdict)
    rules = [{"rule": rule, "answer": "no", "reason": "the judge gave no answer for this rule", "missing": True}
             if answer is None else {"rule": rule, "answer": answer, "reason": "checked"}
             for rule, answer in ((R1, r1), (R2, r2))]
    overall = all(r["answer"] == "yes" for r in rules)
    store.execute("INSERT INTO judgments(generation_id, judge_model, rules, overall, parse_ok) "
                  "VALUES (?, 'j', ?, ?, TRUE)", [gid, json.dumps(rules), overall])
    return gid


def test_missing_rule_answers_are_left_out_of_per_rule_agreement_and_counted(store):
    # R1: 3 yes on accepted, 1 no on rejected, plus 2 unanswered on accepted examples (which a
    # "missing = no" count would turn into 2 disagreements); R2: always answered, one missing never
    cases = [("accepted", "yes", "yes"), ("accepted", "yes", "yes"), ("accepted", "yes", "no"),
             ("rejected", "no", "no"), ("accepted", None, "yes"), ("accepted", None, "yes"),
             ("rejected", "yes", None)]
    for i, (verdict, r1, r2) in enumerate(cases):
        _judged(store, i, verdict, r1, r2)
    res = agreement(store)
    r1 = res["per_rule"][R1]
    assert (r1["judge_yes_accepted"], r1["judge_no_accepted"], r1["judge_yes_rejected"], r1["judge_no_rejected"]) \
        == (3, 0, 1, 1)
    assert r1["n"] == 5 and r1["judge_no_answer"] == 2
    assert r1["kappa"] == kappa_from_counts(3, 0, 1, 1)
    r2 = res["per_rule"][R2]
    assert (r2["judge_yes_accepted"], r2["judge_no_accepted"], r2["judge_yes_rejected"], r2["judge_no_rejected"]) \
        == (4, 1, 0, 1)
    assert r2["judge_no_answer"] == 1
    assert res["judge_no_answer"] == 3
    # the overall verdict is unchanged: an unanswered rule still fails the example
    o = res["overall"]
    assert o["n"] == 7 and o["judge_yes_accepted"] == 2 and o["judge_no_accepted"] == 3


def test_a_rule_the_judge_never_answered_is_listed_with_no_table(store):
    _judged(store, 0, "accepted", None, "yes")
    _judged(store, 1, "rejected", None, "no")
    res = agreement(store)
    assert res["per_rule"][R1]["n"] == 0 and res["per_rule"][R1]["kappa"] is None
    assert res["per_rule"][R1]["judge_no_answer"] == 2 and res["per_rule"][R2]["judge_no_answer"] == 0
