"""The first hour of a new user, page by page in AppTest (issue 15): every page shows the true state.

Generate: the form survives a reload (URL) and a new session (DuckDB); the panel shows the job just
started; a second job on the same server is queued; the embedded model's limits are stated and it
runs at concurrency 1; an empty model name is filled from the server (or refused); a saved prompt
version is shown at once. Home: running work. Corpus: the next step follows the pipeline.
Review: a pre-filtered example shows why and asks before accepting; the export flags it.
Dataset: automatic exclusions listed with reasons; CLI wording never reaches the page.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.generate import jobs as J
from core.pipeline import queued_jobs, running_job_ids
from core.store import open_store
from tests.support.openai_server import FakeOpenAIServer
from tests.support.selections import add_selection
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

ROOT = Path(__file__).resolve().parents[2]
GENERATE, HOME = str(ROOT / "pages" / "3_Generate.py"), str(ROOT / "app.py")
CORPUS, REVIEW, DATASET = (str(ROOT / "pages" / p) for p in ("1_Corpus.py", "4_Review.py", "5_Dataset.py"))


def _clear_llm_env(monkeypatch) -> None:
    for k in list(os.environ):
        if k.startswith(("OPENAI_", "SHOAL_GENERATOR_", "SHOAL_JUDGE_")):
            monkeypatch.delenv(k)


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAIServer(shoal_responder, latency_s=0.3) as srv:
        _clear_llm_env(monkeypatch)
        monkeypatch.setenv("SHOAL_GENERATOR_BASE_URL", srv.base_url)
        monkeypatch.setenv("SHOAL_GENERATOR_MODEL", "fake-model")
        monkeypatch.setenv("USER", "firsthour")
        yield srv


def page_store():
    from ui.common import _store
    return _store(os.environ["SHOAL_DB"])


def _prepare(n: int = 12) -> list[str]:
    store = open_store(os.environ["SHOAL_DB"])
    ids = add_snippets(store, n)
    for name, part in (("first-pick", ids[: n // 2]), ("second-pick", ids[n // 2:])):
        add_selection(store, name, part)
    store.checkpoint()
    store.close()
    return ids


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _wait_idle(timeout: float = 60) -> None:
    store = page_store()
    deadline = time.time() + timeout
    while running_job_ids(store) or queued_jobs(store):
        assert time.time() < deadline, "jobs still running"
        time.sleep(0.1)


def _progress_texts(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


# --------------------------------------------------------------------------- Generate

def test_the_form_survives_a_reload_and_a_new_session(server):
    _prepare()
    at = _run(AppTest.from_file(GENERATE, default_timeout=60))
    assert at.selectbox(key="gen.selection").value == "second-pick"       # newest first
    at.selectbox(key="gen.selection").set_value("first-pick")
    at.number_input(key="gen.limit").set_value(4)
    at.number_input(key="gen.concurrency").set_value(3)
    _run(at)
    assert {m.label: m.value for m in at.metric}["Items"] == "4"
    params = {k: (v[0] if isinstance(v, list) else v) for k, v in dict(at.query_params).items()}
    assert params["gen.selection"] == "first-pick" and params["gen.limit"] == "4"

    # a reload: a new session with the same URL shows (and starts) what was on screen
    reload = AppTest.from_file(GENERATE, default_timeout=60)
    for k, v in params.items():
        reload.query_params[k] = v
    _run(reload)
    assert reload.selectbox(key="gen.selection").value == "first-pick"
    assert reload.number_input(key="gen.limit").value == 4 and reload.number_input(key="gen.concurrency").value == 3
    reload.button(key="gen.start").click()
    _run(reload)
    _wait_idle()
    job = J.get_job(page_store(), max(j["id"] for j in J.list_jobs(page_store())))
    assert job["name"] == "Selection: first-pick" and job["n_items"] == 4 and job["params"]["concurrency"] == 3

    # a new session without the URL (the user came back through the sidebar): the user's last form
    fresh = _run(AppTest.from_file(GENERATE, default_timeout=60))
    assert fresh.selectbox(key="gen.selection").value == "first-pick" and fresh.number_input(key="gen.limit").value == 4


def test_start_shows_the_new_job_and_a_second_start_on_the_same_server_is_queued(server):
    _prepare()
    at = _run(AppTest.from_file(GENERATE, default_timeout=60))
    at.number_input(key="gen.concurrency").set_value(1)      # ~4 s of work: still running when we ask again
    _run(at)
    at.button(key="gen.start").click()
    _run(at)
    first = max(j["id"] for j in J.list_jobs(page_store()))
    assert at.selectbox(key="gen.panel_job").value == first
    assert _progress_texts(at)[0].startswith(f"Job #{first} · ")
    assert any(f"Job {first} started" in s.value for s in at.success)

    # while it runs, the page says so and offers to queue the next one (the default)
    assert first in running_job_ids(page_store())
    _run(at)
    assert any("is running on this server" in w.value for w in at.warning)
    assert at.radio(key="gen.when_busy").value.startswith("Queue")
    at.selectbox(key="gen.selection").set_value("first-pick")
    _run(at)
    at.button(key="gen.start").click()
    _run(at)
    second = max(j["id"] for j in J.list_jobs(page_store()))
    assert second != first and at.selectbox(key="gen.panel_job").value == second   # the panel follows
    assert any(f"Job {second} queued" in s.value for s in at.success)
    assert queued_jobs(page_store()) == {second: (first,)} or J.get_job(page_store(), second)["status"] != "pending"
    _wait_idle()
    _run(at)
    s = page_store()
    assert J.get_job(s, first)["status"] == J.get_job(s, second)["status"] == "done"
    assert server.max_in_flight <= 8


def test_the_embedded_model_states_its_limits_and_runs_one_request_at_a_time(monkeypatch):
    _clear_llm_env(monkeypatch)
    _prepare(3)
    at = _run(AppTest.from_file(GENERATE, default_timeout=60))
    assert any("only demonstrates the flow" in w.value for w in at.warning)
    assert at.number_input(key="gen.concurrency").disabled
    assert any("To use a real model" in i.value or "SHOAL_GENERATOR_BASE_URL" in i.value for i in at.info)


def test_a_server_without_a_model_name_gets_the_one_it_lists(server, monkeypatch):
    monkeypatch.delenv("SHOAL_GENERATOR_MODEL")
    _prepare(4)
    at = _run(AppTest.from_file(GENERATE, default_timeout=60))
    assert at.text_input(key="gen.generator.model_in").value == ""
    at.button(key="gen.start").click()
    _run(at)
    _wait_idle()
    s = page_store()
    job = J.get_job(s, 1)
    assert {p["model"] for p in job["params"]["profiles"].values()} == {"fake-model"}
    assert {r[0] for r in s.execute("SELECT DISTINCT generator_model FROM generations").fetchall()} == {"fake-model"}

    # a server that does not answer: refused with a message, no job (the judge set apart from the generator)
    at.selectbox(key="gen.judge.preset").set_value("custom")
    _run(at)
    at.text_input(key="gen.judge.base_url_in").set_value(f"http://127.0.0.1:{_free_port()}/v1")
    _run(at)
    at.button(key="gen.start").click()
    _run(at)
    assert any("type the model name in the judge model field" in e.value for e in at.error)
    assert len(J.list_jobs(s)) == 1


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_saving_a_prompt_version_shows_it_and_waits_for_the_next_change(server):
    _prepare(3)
    at = _run(AppTest.from_file(GENERATE, default_timeout=60))
    at.selectbox(key="gen.prompt_task").select("code_repair")
    _run(at)
    rules = next(t for t in at.text_area if t.label.startswith("Judge rules"))
    rules.set_value(rules.value + "\nThe fix is minimal.")
    _run(at)
    save = next(b for b in at.button if b.label == "Save as new version")
    assert not save.disabled
    save.click()
    _run(at)
    v2 = page_store().scalar("SELECT id FROM prompt_versions WHERE task = 'code_repair' AND version = 2")
    assert at.selectbox(key="gen.prompt_version.code_repair").value == v2
    assert next(b for b in at.button if b.label == "Save as new version").disabled
    assert any("v2" in s.value for s in at.success)


# --------------------------------------------------------------------------- Home and Corpus

def test_home_says_running_while_a_job_runs(server):
    ids = _prepare(6)
    store = page_store()
    from tests.support.jobs import profiles
    job = J.create_job(store, ids, profiles=profiles(server), task="code_generation", concurrency=1)
    J.start_worker(store, job)
    deadline = time.time() + 30
    while not store.scalar("SELECT count(*) FROM generations"):
        assert time.time() < deadline
        time.sleep(0.05)
    at = _run(AppTest.from_file(HOME, default_timeout=60))
    captions = [c.value for c in at.caption]
    assert "⏳ running" in captions and "✅ done" in captions
    assert any(f"Job #{job}" in i.value.replace("\\", "") and "Running now" in i.value for i in at.info)
    _wait_idle()
    at = _run(AppTest.from_file(HOME, default_timeout=60))
    assert "⏳ running" not in [c.value for c in at.caption]


def test_corpus_next_step_follows_the_pipeline_and_duplicates_do_not_add_up(tmp_path):
    from core.ingest import ingest_sources
    src = str(ROOT / "tests" / "data" / "ingest" / "multilang_repo")
    with open_store(os.environ["SHOAL_DB"]) as s:
        ingest_sources(s, [src])
        ingest_sources(s, [src])
        n = s.scalar("SELECT count(*) FROM snippets")
        map_id = s.scalar("INSERT INTO maps(name, model, n_points, n_clusters) VALUES ('m', 'x', ?, 2) RETURNING id", [n])
        s.execute("INSERT INTO map_points SELECT ?, id, 0, 0, 0 FROM snippets", [map_id])   # a map of every snippet
    at = _run(AppTest.from_file(CORPUS, default_timeout=60))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Already present"] == f"{n:,}" and int(metrics["Duplicates"].replace(",", "")) < n
    nxt = [i.value for i in at.info if "Next step" in i.value]
    assert nxt and "Pick the most diverse snippets" in nxt[0] and "Embed" not in nxt[0]


# --------------------------------------------------------------------------- Review and Dataset

def _prefiltered_example() -> int:
    """One generation the pre-filter stopped (never judged)."""
    s = open_store(os.environ["SHOAL_DB"])
    try:
        sid = add_snippets(s, 1)[0]
        fields = {"instruction": "Summarize the code. Say what it returns. Name its inputs.",
                  "information": "def f(x): return x", "solution": "It returns x."}
        gid = s.scalar("""INSERT INTO generations(snippet_id, task, fields, raw_text, parse_ok, prefilter_ok,
                                                  prefilter_reasons, generator_model)
                          VALUES (?, 'code_summarization', ?, ?, TRUE, FALSE, ?, 'fake-model') RETURNING id""",
                       [sid, json.dumps(fields), json.dumps(fields),
                        json.dumps(["instruction_too_long: 3 sentences (at most 2)"])])
        s.checkpoint()
        return int(gid)
    finally:
        s.close()


def test_review_shows_why_the_pre_filter_stopped_an_example_and_asks_before_accepting(monkeypatch):
    monkeypatch.setenv("USER", "firsthour")
    gid = _prefiltered_example()
    at = _run(AppTest.from_file(REVIEW, default_timeout=60))
    assert any(f"### Example #{gid}" in m.value and "stopped by the pre-filter" in m.value for m in at.markdown)
    assert any("instruction\\_too\\_long" in w.value or "instruction_too_long" in w.value for w in at.warning)
    at.button(key="rv_accept").click()
    _run(at)
    s = page_store()
    assert s.scalar("SELECT count(*) FROM reviews") == 0                       # asked first, nothing saved
    at.button(key="rv_accept_anyway").click()
    _run(at)
    assert s.scalar("SELECT verdict FROM reviews WHERE generation_id = ?", [gid]) == "accepted"
    from core.dataset.export import select_rows
    rows = select_rows(s).rows
    assert [r["provenance"]["prefilter_failed"] for r in rows] == [["instruction_too_long: 3 sentences (at most 2)"]]


def test_review_edit_keeps_the_source_beside_the_form(monkeypatch):
    monkeypatch.setenv("USER", "firsthour")
    _prefiltered_example()
    at = _run(AppTest.from_file(REVIEW, default_timeout=60))
    at.button(key="rv_edit").click()
    _run(at)
    cols = list(at.columns)
    i = next(n for n, c in enumerate(cols) if any("Source snippet" in m.value for m in c.markdown))
    left, right = cols[i], cols[i + 1]
    assert not left.get("text_area") and left.get("code"), "the source stays, with no form above it"
    assert right.get("text_area"), "the edit form sits in the column beside the source"


def test_dataset_lists_every_automatic_exclusion_and_speaks_page_wording(tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "firsthour")
    gid = _prefiltered_example()
    from core import review as rv
    with open_store(os.environ["SHOAL_DB"]) as s:
        rv.decide(s, gid, "accepted", reviewer="firsthour", expected_version=0)
        s.checkpoint()
    at = _run(AppTest.from_file(DATASET, default_timeout=120))
    table = next(t.value for t in at.table if "excluded by" in t.value.columns)
    row = table.loc[gid] if gid in table.index else table.loc[str(gid)]
    assert row["excluded by"] == "pre-filter" and "instruction_too_long" in row["reason"]
    out = tmp_path / "exists"
    out.mkdir()
    at.text_input(key="ds_out").set_value(str(out))
    _run(at)
    assert not at.button(key="ds_export_folder").disabled       # the accepted example may leave
    at.button(key="ds_export_folder").click()
    _run(at)
    errors = [e.value for e in at.error]
    assert errors and all("--" not in e for e in errors) and "Overwrite an existing folder" in errors[0]


def test_the_dataset_card_never_calls_a_judged_example_not_judged(store):
    from core.dataset.card import dataset_card
    from core.dataset.export import select_rows
    from tests.support.seed_data import add_example, distinct_python_solution, wave
    add_example(store, wave("Write a Python function to sum prices.", distinct_python_solution(1)),
                verdict="accepted", judge=True, judge_model="")       # an old row without a model name
    sel = select_rows(store)
    assert [r["provenance"]["judge_verdict"] for r in sel.rows] == ["passed"]
    card = dataset_card(store, "alpaca", sel)
    assert "| not judged |" not in card and "| unknown |" in card
