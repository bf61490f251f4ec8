"""The durable job queue (core/generate/jobs/endpoint_queue.py): queued jobs are rows that the app's queue
runner starts once their server is free, handed over without a moment in which neither job runs."""
from __future__ import annotations

import time

from core.generate import jobs as J
from core.generate.jobs.endpoint_queue import ensure_queue_runner, queue_job, queued_jobs, running_job_ids, start_after
from core.store import open_store
from tests.support.jobs import profiles
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets


def _wait(cond, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_queued_row_left_by_another_process_is_started_by_the_queue_runner(tmp_path):
    db = tmp_path / "q.duckdb"
    with FakeOpenAIServer(shoal_responder) as srv:
        store = open_store(db)
        ids = add_snippets(store, 3)
        job = J.create_job(store, ids, profiles=profiles(srv), task="code_generation")
        queue_job(store, job, [])
        store.close()                      # that process is gone; the row stays
        store = open_store(db)
        assert queued_jobs(store) == {job: ()}
        runner = ensure_queue_runner(store)
        assert ensure_queue_runner(store) is runner          # one per store
        _wait(lambda: J.get_job(store, job)["status"] == "done")
        assert J.wait_for_worker(store, job, 30)
        assert queued_jobs(store) == {}
        store.close()
        runner.join(10)
        assert not runner.is_alive()                         # a closed store ends its runner


def test_a_reader_never_sees_neither_job_while_the_server_is_handed_over(store):
    ids = add_snippets(store, 6)
    with FakeOpenAIServer(shoal_responder, latency_s=0.05) as srv:
        prof = profiles(srv)
        first = J.create_job(store, ids[:3], profiles=prof, task="code_generation", concurrency=1)
        J.start_worker(store, first)
        second = J.create_job(store, ids[3:], profiles=prof, task="code_generation", concurrency=1)
        start_after(store, second, [first])
        gaps = 0
        # what Home and the tests read: running first, then queued (the order most likely to miss a hand-over)
        while J.get_job(store, second)["status"] != "done":
            if not running_job_ids(store) and not queued_jobs(store) and J.get_job(store, second)["status"] != "done":
                gaps += 1
        assert gaps == 0
        assert J.wait_for_worker(store, second, 30)
        assert srv.max_in_flight == 1
