"""Judge calibration beyond the figures: unanswered rules per rule, the background task (and its
cancel), which judge new jobs use, and the dataset card's judge–human agreement of the judge used."""
from __future__ import annotations

import json
import threading

import pytest

from core.background import latest_task, wait_for_tasks
from core.dataset.card import dataset_card
from core.dataset.export import select_rows
from core.dataset.judge_eval import (
    JUDGE_EVAL,
    calibration_of,
    current_judges,
    evaluate_judge,
    gold_counts,
    production_agreement,
    start_judge_eval,
    use_judge_version,
    version_choices,
)
from core.generate.items import current_prompt_version
from core.progress import Cancelled
from core.tasks import get_task
from tests.support.judge_gold import N_GOLD, TASKS, build_gold, judge_profile, scripted_judge
from tests.support.openai_server import FakeOpenAIServer


def test_a_rule_the_judge_skipped_is_counted_apart_not_as_no(store):
    verdicts = build_gold(store)
    with FakeOpenAIServer(scripted_judge(verdicts)) as srv:
        poor = evaluate_judge(store, 2, profile=judge_profile(srv))
    # the scripted judge drops the second rule of example 5 (a code_repair one) and cannot be read on 7
    skipped = get_task(TASKS[1]).rules[1]
    assert {k for k, r in poor["per_rule"].items() if r["judge_no_answer"]} == {skipped}
    assert poor["per_rule"][skipped]["judge_no_answer"] == poor["n_missing_rule_answers"] == 1
    readable_tasks = [TASKS[i % 3 == 2] for i in range(N_GOLD) if i != 7]
    asked = sum(1 for t in readable_tasks if skipped in get_task(t).rules)
    r = poor["per_rule"][skipped]
    assert r["n"] == r["tp"] + r["fn"] + r["fp"] + r["tn"] == asked - 1


def test_gold_counts_versions_and_current_judges(store):
    build_gold(store)
    counts = gold_counts(store)
    assert sum(sum(v.values()) for v in counts.values()) == N_GOLD and set(counts) == set(TASKS)
    assert [c["version"] for c in version_choices(store)] == [2, 1]
    assert all(set(c["tasks"]) == set(TASKS) for c in version_choices(store))
    cur = current_judges(store, TASKS)
    # version 2 changed only the generator part: its judge is version 0's built-in one, not version 1's
    assert all(j["version"] == 2 and 1 not in j["judge_of"] for j in cur.values())
    use_judge_version(store, 1)
    cur = current_judges(store, TASKS)
    assert all(j["version"] == 3 and j["judge_of"] == [1, 3] for j in cur.values())


def test_background_evaluation_and_cancel(store):
    verdicts = build_gold(store)
    with FakeOpenAIServer(scripted_judge(verdicts)) as srv:
        import os
        os.environ["SHOAL_JUDGE_BASE_URL"], os.environ["SHOAL_JUDGE_MODEL"] = srv.base_url, "fake-judge"
        try:
            start_judge_eval(store, [1, 2], tasks=TASKS, sample=40, seed=2)
            assert wait_for_tasks(120)
        finally:
            del os.environ["SHOAL_JUDGE_BASE_URL"], os.environ["SHOAL_JUDGE_MODEL"]
        rec = latest_task(store, JUDGE_EVAL.name)
        assert rec.status == "done", rec.error
        ids = rec.result["eval_ids"]
        runs = {r["id"]: r for r in store.rows("SELECT id, version, n_gold, status FROM judge_evals")}
        assert [runs[i]["version"] for i in ids] == [1, 2] and all(runs[i]["n_gold"] == 40 for i in ids)
        assert "v1: kappa" in rec.result["summary"]
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(Cancelled):
            evaluate_judge(store, 1, profile=judge_profile(srv), cancel=cancel)
    assert store.scalar("SELECT status FROM judge_evals ORDER BY id DESC LIMIT 1") == "cancelled"


def _judge_with(store, task: str, version_id: int) -> None:
    """Every decided example of `task`: its current judgment made with prompt version `version_id`,
    agreeing with the human except on every 7th example."""
    rows = store.rows("SELECT r.generation_id, r.verdict FROM reviews r JOIN generations g ON g.id = r.generation_id "
                      "WHERE r.verdict IN ('accepted', 'rejected') AND g.task = ? ORDER BY 1", [task])
    for i, r in enumerate(rows):
        overall = (r["verdict"] == "accepted") != (i % 7 == 0)
        store.execute("INSERT INTO judgments(generation_id, judge_model, prompt_version_id, rules, overall, parse_ok) "
                      "VALUES (?, 'fake-judge', ?, ?, ?, TRUE)",
                      [r["generation_id"], version_id, json.dumps([]), overall])


def test_card_reports_the_calibration_of_the_judge_used(store):
    verdicts = build_gold(store)
    with FakeOpenAIServer(scripted_judge(verdicts)) as srv:
        good = evaluate_judge(store, 1, profile=judge_profile(srv))
    use_judge_version(store, 1)                      # v3: v1's judge, v2's generator
    v3 = {t: current_prompt_version(store, t) for t in TASKS}
    for t in TASKS:
        _judge_with(store, t, v3[t].id)
    cal = {c["task"]: c for c in calibration_of(store, [v.id for v in v3.values()])}
    for t in TASKS:
        e = cal[t]["evaluation"]
        # evaluated as v1, found for v3: the same judge parts
        assert e["eval_id"] == good["eval_id"] and e["kappa"] == pytest.approx(good["per_task"][t]["kappa"])
        assert cal[t]["versions"] == [3]
    live = production_agreement(store, TASKS[0], cal[TASKS[0]]["prompt_version_ids"])
    assert live["n"] == sum(1 for g in store.rows("SELECT g.task FROM reviews r JOIN generations g ON "
                                                   "g.id = r.generation_id WHERE r.verdict IN ('accepted', 'rejected')")
                            if g["task"] == TASKS[0])
    assert 0 < live["kappa"] < 1
    sel = select_rows(store)
    card = dataset_card(store, "alpaca", sel)
    section = card.split("## Judge calibration", 1)[1]
    assert f"#{good['eval_id']} fake-judge" in section
    assert f"{good['per_task'][TASKS[0]]['kappa']:.3f}" in section and f"{live['kappa']:.3f}" in section
    # a judge nobody evaluated says so
    base = get_task(TASKS[0]).default_content()
    from core.generate.items import save_prompt_version
    v4 = save_prompt_version(store, TASKS[0], {**base, "rules": base["rules"] + ["Another rule."]})
    assert calibration_of(store, [v4.id])[0]["evaluation"] is None


def test_cli_current_names_the_judge_new_jobs_use(tmp_path):
    from typer.testing import CliRunner

    from core.cli.main import app
    from core.store import open_store

    db = tmp_path / "current.duckdb"
    run = lambda *a: CliRunner().invoke(app, ["--db", str(db), *a], catch_exceptions=False)
    assert run("judge", "current").exit_code == 1           # nothing saved yet
    with open_store(db) as s:
        build_gold(s)
        use_judge_version(s, 1)
    out = run("judge", "current")
    assert out.exit_code == 0 and all(f"{t}: v3 (judge of v1, v3)" in out.output for t in TASKS), out.output
    data = json.loads(run("judge", "current", "--json").stdout)
    assert set(data) == set(TASKS) and all(v["judge_of"] == [1, 3] for v in data.values())
