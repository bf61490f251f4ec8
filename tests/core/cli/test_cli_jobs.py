"""The CLI goes through the page's rules (issue 15): model names filled in from the server, the
embedded model's concurrency cap, one job at a time per server (queue or --allow-parallel), the
durable queue run with `shoal jobs --run-queued`, and `shoal status` showing what Home shows."""
from __future__ import annotations

import json
import os
import threading

import pytest
from typer.testing import CliRunner

from core.background import TaskKind, start_task, wait_for_tasks
from core.cli.main import app
from core.config import Profile
from core.generate import jobs as J
from core.generate.jobs.endpoint_queue import blocking_jobs, queue_job, queued_jobs, ready_jobs
from core.pipeline import running_work
from core.store import open_store
from tests.support.jobs import profiles
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets


@pytest.fixture
def env(monkeypatch):
    for k in list(os.environ):
        if k.startswith(("OPENAI_", "SHOAL_GENERATOR_", "SHOAL_JUDGE_")):
            monkeypatch.delenv(k)
    return monkeypatch


def _db(tmp_path, n: int = 6):
    db = tmp_path / "cli.duckdb"
    store = open_store(db)
    ids = add_snippets(store, n)
    return db, store, ids


def _ids_file(tmp_path, ids) -> str:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(ids) + "\n")
    return str(path)


def _cli(db, *args: str):
    return CliRunner().invoke(app, ["--db", str(db), *args])


def test_generate_records_the_model_the_server_lists_when_none_is_named(tmp_path, env):
    db, store, ids = _db(tmp_path, 3)
    store.close()
    with FakeOpenAIServer(shoal_responder, model="served-model") as srv:
        env.setenv("SHOAL_GENERATOR_BASE_URL", srv.base_url)       # a URL, no model name (the judge follows it)
        res = _cli(db, "generate", "--ids", _ids_file(tmp_path, ids), "--task", "code_generation", "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["status"] == "done"
        assert {b["model"] for b in srv.requests} == {"served-model"}
    store = open_store(db)
    stored = J.get_job(store, store.scalar("SELECT max(id) FROM jobs"))["params"]["profiles"]
    assert stored["generator"]["model"] == stored["judge"]["model"] == "served-model"
    assert store.rows("SELECT DISTINCT generator_model, judge_model FROM job_items") == [
        {"generator_model": "served-model", "judge_model": "served-model"}]


def test_generate_refuses_when_no_model_is_named_and_the_server_lists_none(tmp_path, env):
    db, store, ids = _db(tmp_path, 2)
    store.close()
    env.setenv("SHOAL_GENERATOR_BASE_URL", "http://127.0.0.1:9/v1")        # nothing listens there
    res = _cli(db, "generate", "--ids", _ids_file(tmp_path, ids), "--task", "code_generation")
    assert res.exit_code == 1
    assert "type the model name in the generator model field" in " ".join(res.output.split())
    assert open_store(db).scalar("SELECT count(*) FROM jobs") == 0           # no job with an empty model


def test_the_embedded_model_caps_a_cli_job_at_one_request_at_a_time(monkeypatch):
    # the CLI starts its jobs through core.generate.jobs.start (the page's function): the cap is decided there
    from core.generate.jobs.start import job_settings
    from core.llm.concurrency import LOCAL_MODEL_CONCURRENCY
    local = {r: Profile(role=r, source="local", base_url="http://127.0.0.1:5/v1", model="smollm2-135m")
             for r in ("generator", "judge")}
    settings = job_settings(local, 8)
    assert settings.concurrency == LOCAL_MODEL_CONCURRENCY == 1 and settings.profiles == local
    assert "one request at a time" in settings.describe()
    real = {r: p.model_copy(update={"source": "env"}) for r, p in local.items()}
    assert job_settings(real, 8).concurrency == 8                           # a real server: as asked


def test_a_cli_job_waits_for_the_job_queued_before_it_on_the_same_server(tmp_path, env):
    db, store, ids = _db(tmp_path, 6)
    with FakeOpenAIServer(shoal_responder, latency_s=0.05) as srv:
        env.setenv("SHOAL_GENERATOR_BASE_URL", srv.base_url)
        env.setenv("SHOAL_GENERATOR_MODEL", "fake-model")
        first = J.create_job(store, ids[:3], profiles=profiles(srv), task="code_generation", concurrency=1)
        queue_job(store, first, [])                     # queued on the page before the app stopped
        store.close()
        res = _cli(db, "generate", "--ids", _ids_file(tmp_path, ids[3:]), "--task", "code_generation", "-c", "1")
        assert res.exit_code == 0, res.output
        text = " ".join(res.output.split())
        second = first + 1
        assert f"Job {second} queued after job #{first}: one job at a time per server" in text
        assert "--allow-parallel" in text and f"Starting queued job {first}." in text
        assert srv.max_in_flight == 1
    store = open_store(db)
    assert {r["id"]: r["status"] for r in store.rows("SELECT id, status FROM jobs")} == {first: "done", second: "done"}
    spans = {r["job_id"]: (r["a"], r["b"]) for r in store.rows(
        "SELECT job_id, min(created_at) AS a, max(created_at) AS b FROM generations GROUP BY 1")}
    assert spans[first][1] <= spans[second][0]          # first come, first served: never side by side
    assert queued_jobs(store) == {}


def test_allow_parallel_starts_at_once_and_run_queued_runs_what_waits(tmp_path, env):
    db, store, ids = _db(tmp_path, 6)
    with FakeOpenAIServer(shoal_responder) as srv:
        env.setenv("SHOAL_GENERATOR_BASE_URL", srv.base_url)
        env.setenv("SHOAL_GENERATOR_MODEL", "fake-model")
        waiting = J.create_job(store, ids[:3], profiles=profiles(srv), task="code_generation")
        queue_job(store, waiting, [])
        store.close()
        res = _cli(db, "generate", "--ids", _ids_file(tmp_path, ids[3:]), "--task", "code_generation",
                   "--allow-parallel", "--json")
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["status"] == "done"
        store = open_store(db)
        assert queued_jobs(store) == {waiting: ()}       # the parallel run did not take the queued job
        listing = " ".join(CliRunner().invoke(app, ["--db", str(db), "jobs"]).output.split())
        assert "queued" in listing
        store.close()
        res = _cli(db, "jobs", "--run-queued", "--json")
        assert res.exit_code == 0, res.output
        assert [s["job_id"] for s in json.loads(res.stdout)] == [waiting]
        assert json.loads(res.stdout)[0]["status"] == "done"
        again = _cli(db, "jobs", "--run-queued")
        assert again.exit_code == 0 and "No job is queued." in again.output


def test_the_queue_is_first_come_first_served_per_server(store):
    ids = add_snippets(store, 6)
    with FakeOpenAIServer(shoal_responder) as a, FakeOpenAIServer(shoal_responder) as b:
        j1 = J.create_job(store, ids[:2], profiles=profiles(a), task="code_generation")
        j2 = J.create_job(store, ids[2:4], profiles=profiles(a), task="code_generation")
        j3 = J.create_job(store, ids[4:], profiles=profiles(b), task="code_generation")
    for j in (j1, j2, j3):
        queue_job(store, j, [])
    assert ready_jobs(store) == [j1, j3]                  # j2 waits for j1 (same server), j3 has its own
    assert blocking_jobs(store, j2) == [j1] and blocking_jobs(store, j3) == []
    store.execute("UPDATE jobs SET status = 'running', heartbeat_at = current_timestamp WHERE id = ?", [j1])
    assert ready_jobs(store) == [j3] and blocking_jobs(store, j2) == [j1]
    J.cancel_job(store, j1)
    assert ready_jobs(store) == [j2, j3]


def test_status_prints_what_home_shows(tmp_path, env):
    db, store, ids = _db(tmp_path, 4)
    release = threading.Event()
    task = start_task(store, TaskKind("embed_map", "An embed + map run"), lambda ctx: release.wait(30),
                      label="demo model · umap")
    try:
        with FakeOpenAIServer(shoal_responder) as srv:
            job = J.create_job(store, ids, profiles=profiles(srv), task="code_generation")
        queue_job(store, job, [])
        home = [w.text for w in running_work(store)]
        assert home == [f"Job #{job} queued", "demo model · umap: 0"]
        res = _cli(db, "status", "--json")
        assert res.exit_code == 0, res.output
        report = json.loads(res.stdout)
        assert [w["text"] for w in report["running"]] == [w.text for w in running_work(store)]
        assert [(w["kind"], w["id"]) for w in report["running"]] == [("job", job), ("embed_map", task.id)]
        assert {s["title"]: s["state"] for s in report["stages"]}["Map"] == "running"
        text = " ".join(_cli(db, "status").output.split())
        assert "Running now:" in text and "demo model · umap" in text and "shoal jobs --run-queued" in text
    finally:
        release.set()
        wait_for_tasks(30)
    J.cancel_job(store, job)
    assert "Nothing is running." in _cli(db, "status").output
