"""A 500-item job (CodeOcean task mix) against a server that fails 20% of calls in every way it knows:
every item ends succeeded or failed with a reason, every failed call is logged with its reason, nothing is
duplicated, and a retry of the failed items re-sends nothing that was already answered."""
from __future__ import annotations

import concurrent.futures
import json
import time

import pytest

from core.generate.jobs import create_job, job_summary, retry_failed, run_job
from core.tasks import DEFAULT_MIX, get_task
from tests.support.jobs import profiles
from tests.support.openai_server import FAULTS, FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

N = 500


def run_job_here(*args, **kw) -> dict:
    """run_job in a thread of its own: run_job starts its own event loop and refuses a thread that already
    runs one, and Playwright's sync API (the browser tests in this same pytest process) leaves one running
    in the main thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run_job, *args, **kw).result()


def messages_key(body: dict) -> str:
    return json.dumps(body["messages"], sort_keys=True, ensure_ascii=False)


@pytest.mark.slow
def test_500_items_with_20_percent_faults_of_every_kind(store):
    ids = add_snippets(store, N)
    t0 = time.time()
    with FakeOpenAIServer(shoal_responder, fault_rate=0.2, faults=FAULTS, seed=11, timeout_sleep_s=1.0,
                          slow_s=0.2, retry_after=0.05) as srv:
        job = create_job(store, ids, profiles=profiles(srv, timeout_s=0.5), mix=DEFAULT_MIX, concurrency=32)
        s = run_job_here(store, job, client_options=dict(backoff_base_s=0.02, backoff_cap_s=0.2, seed=5))
        first_run_s = time.time() - t0

        injected = {e["fault"] for e in srv.log if e["fault"]}
        assert injected == set(FAULTS), f"not every kind of fault was injected: {set(FAULTS) - injected}"
        n_faults = sum(1 for e in srv.log if e["fault"])
        assert 0.15 < n_faults / len(srv.log) < 0.25

        items = store.rows("SELECT id, status, error FROM job_items WHERE job_id = ?", [job])
        assert len(items) == N and {i["status"] for i in items} <= {"succeeded", "failed"}
        failed = [i for i in items if i["status"] == "failed"]
        assert all(i["error"] and i["error"].split(":")[0] in ("generator", "judge") for i in failed), failed[:3]
        assert s["status"] == "done" and sum(f["n"] for f in s["failures"]) == len(failed)
        # most items get through thanks to retries; the task mix is kept
        assert s["items"]["succeeded"] >= 0.9 * N
        assert len({r["task"] for r in store.rows("SELECT DISTINCT task FROM job_items")}) == len(DEFAULT_MIX)

        # every call is in the log: answered, or failed with its reason (and status code when there was one)
        calls = store.rows("SELECT response_text, error, status_code FROM llm_calls")
        assert all((c["error"] is None and c["response_text"]) or c["error"] for c in calls)
        reasons = {c["error"].split(":")[0] for c in calls if c["error"]}
        assert len(reasons) >= 4, reasons
        # a successful payload is answered once and served from the cache afterwards
        assert store.scalar("SELECT count(*) FROM (SELECT payload_hash FROM llm_calls WHERE error IS NULL "
                            "GROUP BY 1 HAVING count(*) > 1)") == 0

        # no item has more than one generation; every parsed generation has its task's fields
        per_item = store.rows("SELECT i.id, count(g.id) AS n FROM job_items i LEFT JOIN generations g "
                              "ON g.job_item_id = i.id WHERE i.job_id = ? GROUP BY 1", [job])
        assert all(r["n"] <= 1 for r in per_item)
        for g in store.rows("SELECT task, fields FROM generations WHERE parse_ok"):
            assert set(get_task(g["task"]).keys) <= set(json.loads(g["fields"]))
        succeeded = store.rows("SELECT i.id FROM job_items i JOIN generations g ON g.id = i.generation_id "
                               "WHERE i.job_id = ? AND i.status = 'succeeded'", [job])
        assert len(succeeded) == s["items"]["succeeded"]

        # retry the failed items on a healthy server: only what was never answered is sent
        answered = {messages_key(json.loads(r["request"])) for r in store.rows(
            "SELECT request FROM llm_calls WHERE error IS NULL AND response_text IS NOT NULL")}
        srv.fault_rate = 0.0
        before = len(srv.requests)
        assert retry_failed(store, job) == len(failed)
        s2 = run_job_here(store, job)
        resent = [b for b in srv.requests[before:] if messages_key(b) in answered]
        assert resent == []
        assert len(srv.requests) - before <= 2 * len(failed)
        assert s2["items"] == {"pending": 0, "running": 0, "succeeded": N, "failed": 0, "skipped": 0}
        assert store.scalar("SELECT count(*) FROM generations WHERE job_id = ?", [job]) == N
        assert all(r["n"] == 1 for r in store.rows(
            "SELECT count(*) AS n FROM generations WHERE job_id = ? GROUP BY job_item_id", [job]))
        assert job_summary(store, job)["status"] == "done"
    print(f"500 items, {n_faults} injected faults of {len(injected)} kinds, {len(failed)} items failed "
          f"after retries, first run {first_run_s:.1f} s")
