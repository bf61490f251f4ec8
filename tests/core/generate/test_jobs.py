"""Jobs against the real fake OpenAI server: pipeline rows, cache, faults, budgets, pause/resume, idempotency."""
from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest

from core.config import Profile
from core.errors import ShoalError
from core.generate.items import PoolConfig
from core.generate.jobs import (
    assign_tasks,
    cancel_job,
    create_job,
    estimate_job_cost,
    get_job,
    job_counts,
    job_summary,
    list_jobs,
    pause_job,
    plan_items,
    retry_failed,
    run_job,
    start_worker,
    wait_for_worker,
)
from core.tasks import DEFAULT_MIX
from tests.support.jobs import gens_per_item, profiles
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets


def test_assign_tasks_matches_the_codeocean_shares_deterministically():
    ids = [f"id{i}" for i in range(200)]
    a = assign_tasks(ids, DEFAULT_MIX)
    assert a == assign_tasks(ids, DEFAULT_MIX)
    assert Counter(a) == {"code_generation": 114, "code_summarization": 32, "code_repair": 32, "code_translation": 22}
    assert Counter(assign_tasks(ids[:20], DEFAULT_MIX)) == {"code_generation": 11, "code_summarization": 3,
                                                            "code_repair": 3, "code_translation": 3} \
        or sum(Counter(assign_tasks(ids[:20], DEFAULT_MIX)).values()) == 20
    assert assign_tasks(ids, DEFAULT_MIX, seed=1) != a
    with pytest.raises(ShoalError):
        assign_tasks(ids, {"poetry": 1.0})


def test_plan_rejects_bad_input_clearly(store):
    ids = add_snippets(store, 3)
    with pytest.raises(ShoalError, match="None of the given"):
        plan_items(store, ["nope"], task="code_generation")
    with pytest.raises(ShoalError, match="either one task or a task mix"):
        plan_items(store, ids, task="code_generation", mix=DEFAULT_MIX)
    plan = plan_items(store, ids + ["missing"], task="code_translation", target_languages=["python", "go"])
    assert plan.unknown_ids == ["missing"] and plan.n_items == 3
    assert {it["target_language"] for it in plan.items} == {"go"}     # never the source language
    with pytest.raises(ShoalError, match="seed"):
        plan_items(store, ids, task="oss_instruct", seeds_only=True)


def test_job_runs_the_full_pipeline_and_a_rerun_is_served_from_the_cache(store):
    ids = add_snippets(store, 24)
    with FakeOpenAIServer(shoal_responder) as srv:
        prof = profiles(srv)
        est = estimate_job_cost(store, plan_items(store, ids, mix=DEFAULT_MIX), prof)
        assert est["calls"] == 48 and est["prompt_tokens"] > 0
        job = create_job(store, ids, profiles=prof, mix=DEFAULT_MIX, concurrency=6, target_languages=["go"])
        seen = []
        summary = run_job(store, job, progress=lambda d, t, n: seen.append((d, t)))
        assert summary["status"] == "done" and summary["items"]["succeeded"] == 24
        assert seen[-1] == (24, 24)
        assert store.one("SELECT min(attempts) AS lo, max(attempts) AS hi FROM job_items WHERE job_id = ?",
                         [job]) == {"lo": 1, "hi": 1}
        n_requests = len(srv.requests)
        judged = summary["judged"]
        assert n_requests == 24 + judged and summary["prefilter_rejected"] == 24 - judged
        assert 0 < summary["prefilter_rejected"] < 8 and 0 < summary["judge_passed"] < judged

        rows = store.rows("SELECT g.*, i.item_key, i.prompt_version_id AS ipv FROM generations g "
                          "JOIN job_items i ON i.generation_id = g.id WHERE g.job_id = ?", [job])
        assert len(rows) == 24 and all(r["prompt_version_id"] == r["ipv"] is not None for r in rows)
        assert all(r["parse_ok"] and r["raw_text"] and r["llm_call_id"] for r in rows)
        tasks = Counter(r["task"] for r in rows)
        assert set(tasks) == set(DEFAULT_MIX)
        assert all(r["target_language"] == "go" for r in rows if r["task"] == "code_translation")
        rejected = [r for r in rows if not r["prefilter_ok"]]
        assert all(json.loads(r["prefilter_reasons"])[0].startswith("instruction_too_long") for r in rejected)
        j = store.rows("SELECT j.* FROM judgments j JOIN generations g ON g.id = j.generation_id WHERE g.job_id = ?", [job])
        assert len(j) == judged and all(x["parse_ok"] and x["raw_text"] and x["llm_call_id"] for x in j)
        for x in j:
            rules = json.loads(x["rules"])
            assert all(set(r) == {"rule", "answer", "reason"} for r in rules)
            assert x["overall"] == all(r["answer"] == "yes" for r in rules)

        # the results are lost (say, the database rows were deleted) and the job runs again: zero requests
        fields_before = {r["item_key"]: r["fields"] for r in rows}
        store.execute("DELETE FROM judgments")
        store.execute("DELETE FROM generations")
        store.execute("UPDATE job_items SET status = 'pending', generation_id = NULL WHERE job_id = ?", [job])
        assert run_job(store, job)["items"]["succeeded"] == 24
        assert len(srv.requests) == n_requests
        after = store.rows("SELECT i.item_key, g.fields FROM generations g JOIN job_items i ON i.generation_id = g.id")
        assert {r["item_key"]: r["fields"] for r in after} == fields_before

        # the same work in a new job is recognised as done: items skipped, nothing sent
        job2 = create_job(store, ids, profiles=prof, mix=DEFAULT_MIX, target_languages=["go"])
        assert job_counts(store, job2)["skipped"] == 24
        assert run_job(store, job2)["status"] == "done" and len(srv.requests) == n_requests


@pytest.mark.parametrize("mode", ["json_object", "text"])
def test_servers_without_json_schema_still_give_parsed_examples(store, mode):
    ids = add_snippets(store, 6)
    with FakeOpenAIServer(shoal_responder, reject_json_schema=True, reject_json_object=(mode == "text")) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_translation", concurrency=3,
                         target_languages=["rust"])
        s = run_job(store, job)
        assert s["items"]["succeeded"] == 6 and s["judged"] >= 4
        modes = {r["response_format"] for r in store.rows("SELECT DISTINCT response_format FROM llm_calls "
                                                          "WHERE error IS NULL")}
        assert modes == {mode}


def test_twenty_percent_faults_every_item_ends_with_a_reason_and_failed_ones_retry(store):
    ids = add_snippets(store, 100)
    faults = ("429", "500", "timeout", "truncated", "invalid_json", "schema_violation", "disconnect", "503")
    with FakeOpenAIServer(shoal_responder, fault_rate=0.2, faults=faults, seed=3, timeout_sleep_s=1.5,
                          retry_after=0.05) as srv:
        prof = profiles(srv, timeout_s=0.5)
        job = create_job(store, ids, profiles=prof, task="code_generation", concurrency=16)
        # fewer retries than the defaults, so that some items really fail
        s = run_job(store, job, client_options=dict(max_retries=1, max_parse_retries=0, backoff_base_s=0.01, seed=1))
        items = store.rows("SELECT status, error FROM job_items WHERE job_id = ?", [job])
        assert len(items) == 100 and all(i["status"] in ("succeeded", "failed") for i in items)
        failed = [i for i in items if i["status"] == "failed"]
        assert failed and all(i["error"] and (i["error"].startswith("generator:") or i["error"].startswith("judge:"))
                              for i in failed)
        assert s["status"] == "done" and sum(f["n"] for f in s["failures"]) == len(failed)
        assert {f for f in (e["fault"] for e in srv.log) if f} >= {"429", "500", "timeout", "invalid_json"}
        # judge-side failures keep the generation (with its raw text) for the retry to replace
        assert all(n["n"] <= 1 for n in gens_per_item(store, job))

        srv.fault_rate = 0.0
        assert retry_failed(store, job) == len(failed)
        s2 = run_job(store, job)
        assert s2["items"]["succeeded"] == 100 and s2["items"]["failed"] == 0
        assert all(n["n"] == 1 for n in gens_per_item(store, job))       # no duplicates after the retry
        assert store.scalar("SELECT count(*) FROM generations WHERE job_id = ?", [job]) == 100


def test_later_items_learn_from_examples_judged_earlier_in_the_same_job(store):
    ids = add_snippets(store, 12)
    with FakeOpenAIServer(shoal_responder) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_summarization", concurrency=2,
                         pool=PoolConfig(good=12, bad=0, refresh_every=4))   # every pool example shown
        assert run_job(store, job)["items"]["succeeded"] == 12
        snaps = get_job(store, job)["params"]["pool_snapshots"]
        assert sorted(snaps, key=int) == ["0", "1", "2"]
        passed = store.rows("SELECT g.fields FROM generations g JOIN judgments j ON j.generation_id = g.id "
                            "WHERE j.overall ORDER BY g.id")
        first = json.loads(passed[0]["fields"])["task_name"]
        gen_prompts = [b["messages"][-1]["content"] for b in srv.requests if "## Input code" in
                       b["messages"][-1]["content"] and "## Example to judge" not in b["messages"][-1]["content"]]
        assert first not in gen_prompts[0]                       # block 0: only built-in examples
        assert any(f'"task_name": "{first}"' in p for p in gen_prompts[8:])   # a later block shows it as good


def test_call_budget_stops_the_job_and_resume_finishes_it(store):
    ids = add_snippets(store, 30)
    with FakeOpenAIServer(shoal_responder) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_summarization", concurrency=4, max_calls=12)
        s = run_job(store, job)
        assert s["status"] == "paused" and s["stop_reason"].startswith("budget: call cap 12")
        assert len(srv.requests) <= 12 and s["usage"]["calls"] == len(srv.requests)
        assert s["items"]["pending"] > 0
        # lift the cap and resume
        store.execute("UPDATE jobs SET params = json_merge_patch(params, '{\"max_calls\": null}') WHERE id = ?", [job])
        s2 = run_job(store, job)
        assert s2["status"] == "done" and s2["items"]["succeeded"] == 30
        assert all(n["n"] == 1 for n in gens_per_item(store, job))


def test_cost_cap_stops_the_job_and_a_deleted_snippet_fails_with_a_reason(store):
    ids = add_snippets(store, 20)
    with FakeOpenAIServer(shoal_responder) as srv:
        prof = {r: Profile(role=r, base_url=srv.base_url, model="gpt-4", timeout_s=10) for r in ("generator", "judge")}
        job = create_job(store, ids, profiles=prof, task="code_generation", concurrency=2, max_cost=0.25)
        store.execute("DELETE FROM snippets WHERE id = ?", [ids[-1]])
        s = run_job(store, job)
        assert s["status"] == "paused" and s["stop_reason"].startswith("budget: cost cap")
        spent = store.scalar("SELECT sum(cost_usd) FROM llm_calls")
        assert 0 < spent <= 0.25 + 0.1 and abs(s["usage"]["cost_usd"] - spent) < 1e-6
        assert s["items"]["pending"] > 0
        assert store.scalar("SELECT error FROM job_items WHERE snippet_id = ?", [ids[-1]]) == \
            "snippet no longer in the database"


def test_worker_thread_pause_and_resume_through_the_database(store):
    ids = add_snippets(store, 40)
    with FakeOpenAIServer(shoal_responder, latency_s=0.05) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_repair", concurrency=2)
        start_worker(store, job)
        deadline = time.time() + 20
        while job_counts(store, job)["succeeded"] < 4 and time.time() < deadline:
            time.sleep(0.05)
        pause_job(store, job)
        assert wait_for_worker(store, job, timeout=20)
        c = job_counts(store, job)
        assert get_job(store, job)["status"] == "paused" and c["pending"] > 0 and c["running"] == 0
        assert list_jobs(store)[0]["id"] == job and not list_jobs(store)[0]["interrupted"]
        start_worker(store, job)
        assert wait_for_worker(store, job, timeout=60)
        assert job_summary(store, job)["status"] == "done" and job_counts(store, job)["succeeded"] == 40

        job2 = create_job(store, add_snippets(store, 10, kind="seed"), profiles=profiles(srv), task="oss_instruct",
                          seeds_only=True, concurrency=1)
        start_worker(store, job2)
        time.sleep(0.2)
        cancel_job(store, job2)
        assert wait_for_worker(store, job2, timeout=20)
        assert get_job(store, job2)["status"] == "cancelled" and job_counts(store, job2)["running"] == 0


@pytest.mark.llama
@pytest.mark.slow
def test_one_item_end_to_end_on_the_embedded_llama_cpp_model(store, monkeypatch):
    """No endpoint configured: the job runs on the embedded local model through the real llama.cpp server;
    the item ends succeeded or failed-with-reason and every reply is kept."""
    from core.errors import MissingDependency
    from core.llm import local_model as local_llm
    from core.llm.profiles import load_profiles
    for k in list(os.environ):
        if k.startswith(("OPENAI_", "SHOAL_GENERATOR_", "SHOAL_JUDGE_")):
            monkeypatch.delenv(k)
    try:
        local_llm.check_server_package()
        local_llm.model_file(None)
    except MissingDependency as exc:
        pytest.skip(str(exc))
    prof = load_profiles()
    assert {p.source for p in prof.values()} == {"local"}
    prof = {r: p.model_copy(update={"max_tokens": 160, "timeout_s": 240}) for r, p in prof.items()}
    ids = add_snippets(store, 1)
    job = create_job(store, ids, profiles=prof, task="code_generation", concurrency=4)
    s = run_job(store, job, client_options={"max_retries": 1})
    item = store.one("SELECT status, error, generation_id FROM job_items WHERE job_id = ?", [job])
    assert s["status"] == "done" and (item["status"] == "succeeded" or item["error"])
    calls = store.rows("SELECT response_format, response_text, error FROM llm_calls")
    assert any(c["response_format"] == "json_object" and c["response_text"] and c["error"] is None for c in calls)
    if item["generation_id"] is not None:
        g = store.one("SELECT raw_text, parse_ok FROM generations WHERE id = ?", [item["generation_id"]])
        assert g["raw_text"]


def test_migration_004_moves_usage_and_stop_reason_out_of_the_params_bag(tmp_path, monkeypatch):
    import core.store as store_module
    every = list(store_module.MIGRATIONS)
    monkeypatch.setattr(store_module, "MIGRATIONS", [m for m in every if m[0] < "004"])
    old = store_module.open_store(tmp_path / "old.duckdb")
    bag = {"task": "code_generation", "pool_snapshots": {"0": {"max_generation_id": 0, "reviews_until": "x"}},
           "usage": {"calls": 7, "cost_usd": 0.125}, "stop_reason": "budget: call cap 8 reached (7 calls made)"}
    old.execute("INSERT INTO jobs(name, params) VALUES ('before', ?), ('empty', NULL)", [json.dumps(bag)])
    old.checkpoint()
    old.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", every)
    new = store_module.open_store(tmp_path / "old.duckdb")
    before = get_job(new, 1)
    assert (before["calls"], before["cost_usd"], before["stop_reason"]) == (7, 0.125, bag["stop_reason"])
    assert before["params"] == {"task": "code_generation", "pool_snapshots": bag["pool_snapshots"]}
    assert job_summary(new, 1)["usage"] == {"calls": 7, "cost_usd": 0.125}
    empty = get_job(new, 2)
    assert (empty["calls"], empty["cost_usd"], empty["stop_reason"]) == (0, 0.0, None)
    new.close()


def test_a_run_keeps_liveness_in_columns_and_leaves_params_as_planned(store):
    ids = add_snippets(store, 6)
    with FakeOpenAIServer(shoal_responder) as srv:
        job = create_job(store, ids, profiles=profiles(srv), task="code_generation", concurrency=2, max_calls=4)
        planned = get_job(store, job)["params"]
        s = run_job(store, job)
        row = get_job(store, job)
        assert s["stop_reason"] == row["stop_reason"] and row["stop_reason"].startswith("budget: call cap 4")
        assert row["calls"] == len(srv.requests) == s["usage"]["calls"] and row["heartbeat_at"] is not None
        assert row["params"] == planned and "usage" not in row["params"]
        store.execute("UPDATE jobs SET params = json_merge_patch(params, '{\"max_calls\": null}') WHERE id = ?", [job])
        s2 = run_job(store, job)
        assert s2["status"] == "done" and s2["stop_reason"] is None      # a finished run clears the reason
        assert get_job(store, job)["calls"] == len(srv.requests)
