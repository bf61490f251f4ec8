"""What is running (core.pipeline): jobs and background tasks in one answer, the stages' states,
one job per endpoint (a queued job starts when the running one ends), model names never empty."""
from __future__ import annotations

import threading
import time

import pytest

from core.background import TaskKind, start_task, wait_for_tasks
from core.config import Profile
from core.errors import ShoalError
from core.generate import jobs as J
from core.llm.profiles import with_model_names
from core.pipeline import (
    endpoint_key,
    jobs_on_endpoint,
    pipeline_status,
    queued_jobs,
    running_job_ids,
    running_work,
    start_after,
)
from core.tasks import DEFAULT_MIX
from tests.support.jobs import profiles
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets


def _wait(cond, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_running_job_and_a_task_are_running_work_and_the_stage_says_running(store):
    ids = add_snippets(store, 6)
    assert pipeline_status(store)[3]["state"] == "to do"
    release = threading.Event()
    task = start_task(store, TaskKind("ingest", "An ingest"), lambda ctx: release.wait(30), label="demo")
    with FakeOpenAIServer(shoal_responder, latency_s=0.3) as srv:
        job = J.create_job(store, ids, profiles=profiles(srv), mix=DEFAULT_MIX, concurrency=1)
        J.start_worker(store, job)
        _wait(lambda: store.scalar("SELECT count(*) FROM generations") >= 1)
        work = running_work(store)
        assert [(w.kind, w.id) for w in work] == [("job", job), ("ingest", task.id)]
        assert work[0].text.startswith(f"Job #{job}: ") and work[0].total == 6
        steps = {s["title"]: s for s in pipeline_status(store)}
        # examples exist, but the job still runs: the stage says so instead of "done"
        assert steps["Generate"]["done"] and steps["Generate"]["state"] == "running"
        assert steps["Corpus"]["state"] == "running" and steps["Map"]["state"] == "to do"
        release.set()
        assert J.wait_for_worker(store, job, 60) and wait_for_tasks(30)
    assert running_work(store) == []
    assert {s["title"]: s["state"] for s in pipeline_status(store)}["Generate"] == "done"


def test_a_job_alive_in_another_process_counts_by_its_heartbeat(store):
    ids = add_snippets(store, 2)
    with FakeOpenAIServer(shoal_responder) as srv:
        job = J.create_job(store, ids, profiles=profiles(srv), task="code_generation")
    store.execute("UPDATE jobs SET status = 'running', heartbeat_at = current_timestamp WHERE id = ?", [job])
    assert running_job_ids(store) == [job]
    store.execute("UPDATE jobs SET heartbeat_at = current_timestamp - INTERVAL 1 MINUTE WHERE id = ?", [job])
    assert running_job_ids(store) == []          # its process is gone: interrupted, not running


def test_a_second_job_on_the_same_server_waits_for_the_first(store):
    ids = add_snippets(store, 8)
    with FakeOpenAIServer(shoal_responder, latency_s=0.2) as srv, FakeOpenAIServer(shoal_responder) as other:
        prof = profiles(srv)
        first = J.create_job(store, ids[:4], profiles=prof, task="code_generation", concurrency=1)
        J.start_worker(store, first)
        _wait(lambda: first in running_job_ids(store))
        assert jobs_on_endpoint(store, prof) == [first]
        assert jobs_on_endpoint(store, profiles(other)) == []        # another server is free
        second = J.create_job(store, ids[4:], profiles=prof, task="code_generation", concurrency=1)
        start_after(store, second, [first])
        assert queued_jobs(store) == {second: (first,)}
        assert [w.queued_after for w in running_work(store) if w.id == second] == [(first,)]
        assert store.scalar("SELECT count(*) FROM job_items WHERE job_id = ? AND status <> 'pending'", [second]) == 0
        assert J.wait_for_worker(store, first, 60)
        _wait(lambda: J.get_job(store, second)["status"] == "done")
        # the two never ran side by side: the second one's first item started after the first job ended
        first_end = store.scalar("SELECT max(updated_at) FROM job_items WHERE job_id = ?", [first])
        second_start = store.scalar("SELECT min(created_at) FROM generations WHERE job_id = ?", [second])
        assert second_start >= first_end
        assert srv.max_in_flight == 1
    assert queued_jobs(store) == {}


def test_a_queued_job_cancelled_while_it_waits_never_starts(store):
    ids = add_snippets(store, 4)
    with FakeOpenAIServer(shoal_responder, latency_s=0.2) as srv:
        prof = profiles(srv)
        first = J.create_job(store, ids[:2], profiles=prof, task="code_generation", concurrency=1)
        J.start_worker(store, first)
        second = J.create_job(store, ids[2:], profiles=prof, task="code_generation", concurrency=1)
        waiter = start_after(store, second, [first])
        J.cancel_job(store, second)
        waiter.join(60)
        assert J.wait_for_worker(store, first, 60)
    assert store.scalar("SELECT count(*) FROM generations WHERE job_id = ?", [second]) == 0
    assert not waiter.is_alive() and queued_jobs(store) == {}


def test_endpoint_key_tells_the_embedded_model_from_a_url():
    assert endpoint_key({"source": "local", "model": "smollm2-135m", "base_url": "http://127.0.0.1:5/v1"}) \
        == endpoint_key({"source": "local", "model": "smollm2-135m", "base_url": ""})
    assert endpoint_key({"source": "env", "base_url": "http://H:8000/v1/"}) == "http://h:8000/v1"


def test_model_names_are_filled_from_the_server_or_refused():
    with FakeOpenAIServer(shoal_responder, model="served-model") as srv:
        profs = {r: Profile(role=r, base_url=srv.base_url, model="") for r in ("generator", "judge")}
        filled = with_model_names(profs)
        assert {p.model for p in filled.values()} == {"served-model"}
        assert not filled["generator"].key_env_explicit           # the key variable stays implicit
        named = {"generator": Profile(role="generator", base_url=srv.base_url, model="mine")}
        assert with_model_names(named)["generator"].model == "mine"
    gone = {"judge": Profile(role="judge", base_url=f"http://127.0.0.1:{srv.port}/v1", model="")}
    with pytest.raises(ShoalError, match="type the model name in the judge model field"):
        with_model_names(gone)
    with pytest.raises(ShoalError, match="lists no models"):
        with_model_names({"judge": Profile(role="judge", base_url="http://x/v1", model="")},
                         list_models=lambda p: [])


def test_snippets_added_after_the_map_make_the_map_stage_out_of_date(store):
    """Adding a corpus to a mapped project: Home and `shoal status` say the map misses the new
    snippets (a selection would draw only from the mapped ones) and the next step is the map."""
    from core.cli.status import status_report
    from core.maps.build import map_coverage
    from core.pipeline import next_step
    from tests.support.maps import make_mapped_store
    make_mapped_store(store)
    n = int(store.scalar("SELECT count(*) FROM snippets"))
    assert map_coverage(store) == {"map_id": map_coverage(store)["map_id"], "mapped": n, "total": n, "unmapped": 0}
    steps = {s["title"]: s for s in pipeline_status(store)}
    assert steps["Map"]["state"] == "done" and steps["Map"]["note"] is None
    add_snippets(store, 5)
    steps = pipeline_status(store)
    the_map = next(s for s in steps if s["title"] == "Map")
    assert the_map["state"] == "stale" and "5 were added since it was built" in the_map["note"]
    assert next_step(steps)["title"] == "Map" and "build it again" in next_step(steps)["next"]
    report = status_report(store)
    assert {s["title"]: s["state"] for s in report["stages"]}["Map"] == "stale"
