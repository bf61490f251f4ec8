"""Judge calibration: two judge prompt versions against 120 human verdicts, through the real client
and a loopback server whose scripted judge agrees with people under one version and guesses under
the other; the better one is made current from the CLI."""
from __future__ import annotations

import json

import pytest

from core.dataset.judge_eval import (
    compare_evals,
    draw_gold_candidates,
    evaluate_judge,
    gold_set,
    list_evals,
    use_judge_version,
)
from core.dataset.judge_metrics import binary_stats
from core.generate.items import current_prompt_version
from core.review import kappa_from_counts
from core.tasks import get_task
from tests.support.judge_gold import EXTRA_RULE, N_GOLD, TASKS, build_gold, flipped, judge_profile, scripted_judge
from tests.support.openai_server import FakeOpenAIServer


def _expected(verdicts: dict[str, str]) -> dict:
    """Version 1's figures counted independently from the script."""
    tp = fn = fp = tn = 0
    for instruction, verdict in verdicts.items():
        human = verdict == "accepted"
        judge = human != flipped(instruction)
        tp += judge and human
        fn += (not judge) and human
        fp += judge and not human
        tn += not judge and not human
    return {"stats": binary_stats(tp, fn, fp, tn),
            "flipped": sum(flipped(i) for i in verdicts)}


def test_gold_set_is_the_human_decisions(store):
    verdicts = build_gold(store)
    gold = gold_set(store)
    assert len(gold) == N_GOLD == len(verdicts)
    assert {g.fields["instruction"]: g.human_verdict for g in gold} == verdicts
    assert len(gold_set(store, tasks=[TASKS[1]])) == sum(1 for i in range(N_GOLD) if i % 3 == 2)
    sample = gold_set(store, sample=30, seed=4)
    assert len(sample) == 30 and sample == gold_set(store, sample=30, seed=4)
    # candidates for reviewers: undecided judged examples only, both judge answers represented
    cands = draw_gold_candidates(store, 4, seed=1)
    decided = {g.generation_id for g in gold}
    assert len(cands) == 4 and not set(cands) & decided
    overall = {store.scalar("SELECT judge_overall FROM review_effective WHERE generation_id = ?", [c]) for c in cands}
    assert overall == {True, False}


def test_two_versions_side_by_side_and_the_better_one_made_current(store):
    verdicts = build_gold(store)
    expected = _expected(verdicts)
    with FakeOpenAIServer(scripted_judge(verdicts)) as srv:
        good = evaluate_judge(store, 1, profile=judge_profile(srv))
        poor = evaluate_judge(store, 2, profile=judge_profile(srv))
        n_requests = len(srv.requests)
        again = evaluate_judge(store, 1, profile=judge_profile(srv))        # every call served from the cache
        assert len(srv.requests) == n_requests
    assert good["n_gold"] == poor["n_gold"] == N_GOLD and good["judge_model"] == "fake-judge"
    o = good["overall"]
    for k in ("tp", "fn", "fp", "tn", "accuracy", "precision_accept", "recall_accept", "kappa"):
        assert o[k] == pytest.approx(expected["stats"][k])
    assert len(good["disagreements"]) == expected["flipped"] and good["n_unreadable"] == 0
    assert o["kappa"] > 0.8 and poor["overall"]["kappa"] < 0.3
    assert poor["n_unreadable"] == 1 and poor["n_missing_rule_answers"] == 1
    assert poor["calls"] == N_GOLD + 1          # the unreadable reply was asked once more, with a correction
    assert any(d["judge"] is None for d in poor["disagreements"])
    assert set(good["per_task"]) == set(TASKS)
    assert good["per_rule"][EXTRA_RULE]["kappa"] == pytest.approx(o["kappa"])
    assert EXTRA_RULE not in poor["per_rule"]
    assert again["calls"] == 0 and again["overall"] == good["overall"]
    # per-rule kappa uses core.review's definition on the rule's own 2x2 table
    r = poor["per_rule"][get_task(TASKS[0]).rules[0]]
    assert r["kappa"] == kappa_from_counts(r["tp"], r["fn"], r["fp"], r["tn"])
    cmp = compare_evals([good, poor])
    assert cmp["best"]["version"] == 1 and len(cmp["columns"]) == 2
    assert {row["key"] for row in cmp["rows"] if row["scope"] == "rule"} >= {EXTRA_RULE}
    assert [e["eval_id"] for e in list_evals(store)] == [again["eval_id"], poor["eval_id"], good["eval_id"]]

    before = current_prompt_version(store, TASKS[0])
    out = use_judge_version(store, 1)
    assert set(out) == set(TASKS) and all(r["changed"] and r["version"] == 3 for r in out.values())
    now = current_prompt_version(store, TASKS[0])
    assert now.version == 3 and now.content["rules"][-1] == EXTRA_RULE
    assert now.content["requirements"] == before.content["requirements"]      # the generator part stays
    assert use_judge_version(store, 1)[TASKS[0]]["changed"] is False


def test_cli_prints_per_rule_kappa_and_makes_the_better_version_current(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from core.cli.main import app
    from core.store import open_store

    db = tmp_path / "judge.duckdb"
    with open_store(db) as s:
        verdicts = build_gold(s)
    with FakeOpenAIServer(scripted_judge(verdicts)) as srv:
        monkeypatch.setenv("SHOAL_JUDGE_BASE_URL", srv.base_url)
        monkeypatch.setenv("SHOAL_JUDGE_MODEL", "fake-judge")
        monkeypatch.setenv("SHOAL_JUDGE_TIMEOUT", "10")
        run = lambda *a: CliRunner().invoke(app, ["--db", str(db), *a], catch_exceptions=False)
        out = run("judge", "eval", "--version", "1", "--version", "2", "--json")
        assert out.exit_code == 0, out.output
        data = json.loads(out.stdout)
        human = run("judge", "eval", "--version", "1", "--version", "2")
    assert [e["version"] for e in data["evals"]] == [1, 2]
    assert all(e["n_gold"] == N_GOLD for e in data["evals"])
    assert data["comparison"]["best"]["version"] == 1
    rule_rows = [r for r in data["comparison"]["rows"] if r["scope"] == "rule"]
    assert len(rule_rows) >= len(get_task(TASKS[0]).rules) + 1
    assert human.exit_code == 0 and "kappa · " + EXTRA_RULE[:40] in human.output
    assert "shoal judge use --version 1" in human.output
    out = run("judge", "use", "--version", "1")
    assert out.exit_code == 0 and "judge from v1" in out.output
    with open_store(db) as s:
        assert all(current_prompt_version(s, t).content["rules"][-1] == EXTRA_RULE for t in TASKS)
    assert run("judge", "history").exit_code == 0
    assert run("judge", "use", "--version", "9").exit_code == 1
