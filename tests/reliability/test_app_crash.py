"""kill -9 of the running app (real Streamlit process, real Chromium) in the middle of a generation job and
in the middle of a bulk review action; then restart and check that nothing answered is lost or re-sent,
nothing is duplicated, the job resumes from the page, and a bulk action is all there or not there at all."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from core.store import open_store
from tests.core.test_jobs import add_snippets
from tests.e2e.conftest import screenshot, wait_for_app
from tests.support.fake_generations import fill_fake
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_ITEMS = 60
KILL_AFTER_REQUESTS = 50        # of the 2 * N_ITEMS calls: well inside the job


def messages_key(messages) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)


def llm_env(srv: FakeOpenAIServer) -> dict:
    return {"SHOAL_GENERATOR_BASE_URL": srv.base_url, "SHOAL_GENERATOR_MODEL": "fake-generator",
            "SHOAL_JUDGE_BASE_URL": srv.base_url, "SHOAL_JUDGE_MODEL": "fake-judge",
            "SHOAL_GENERATOR_TIMEOUT": "20", "SHOAL_JUDGE_TIMEOUT": "20", "HF_HUB_OFFLINE": "1"}


def progress_text(page) -> str:
    bar = page.locator("[data-testid='stProgress']")
    return bar.first.inner_text() if bar.count() else ""


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch):
    """The app inherits the test's environment: no real OpenAI settings may leak into it."""
    for k in list(os.environ):
        if k.startswith("OPENAI_") or k.startswith(("SHOAL_GENERATOR_", "SHOAL_JUDGE_")):
            monkeypatch.delenv(k)


def test_kill_minus_nine_during_a_page_started_job_then_resume_from_the_page(tmp_path, page, app_server):
    db = tmp_path / "crash_job.duckdb"
    with open_store(db) as s:
        add_snippets(s, N_ITEMS)
        s.checkpoint()

    with FakeOpenAIServer(shoal_responder, latency_s=0.5) as llm:
        srv = app_server(db, env=llm_env(llm))
        page.goto(srv.url + "/Generate")
        wait_for_app(page)
        page.get_by_text("All snippets", exact=True).click()
        wait_for_app(page)
        limit = page.get_by_role("spinbutton", name="At most")
        limit.fill(str(N_ITEMS))
        limit.press("Enter")
        page.locator("[data-testid='stMetric']").filter(has_text="Items") \
            .filter(has_text=str(N_ITEMS)).wait_for()
        wait_for_app(page)
        page.get_by_role("button", name="Start job").click()

        deadline = time.time() + 60
        while len(llm.requests) < KILL_AFTER_REQUESTS and time.time() < deadline:
            time.sleep(0.02)
        assert len(llm.requests) >= KILL_AFTER_REQUESTS, "the job did not start from the page"
        screenshot(page, "reliability_job_before_kill")
        srv.kill9()
        time.sleep(0.6)                     # let the server threads record what was in flight
        sent_before = len(llm.requests)

        with open_store(db) as s:           # the crashed file opens (DuckDB replays its WAL)
            job_id = int(s.scalar("SELECT max(id) FROM jobs"))
            assert s.scalar("SELECT status FROM jobs WHERE id = ?", [job_id]) == "running"
            assert s.scalar("SELECT n_items FROM jobs WHERE id = ?", [job_id]) == N_ITEMS
            done_before = int(s.scalar("SELECT count(*) FROM job_items WHERE job_id = ? AND status = 'succeeded'",
                                       [job_id]))
            assert 0 < done_before < N_ITEMS, "the kill must land in the middle of the job"
            # every finished item was written whole: its generation and (when judged) its judgment
            assert s.scalar("""SELECT count(*) FROM job_items i LEFT JOIN generations g ON g.id = i.generation_id
                               WHERE i.job_id = ? AND i.status = 'succeeded' AND g.id IS NULL""", [job_id]) == 0
            answered = {messages_key(json.loads(r["request"])["messages"]) for r in s.rows(
                "SELECT request FROM llm_calls WHERE error IS NULL AND response_text IS NOT NULL")}
            assert len(answered) >= 2 * done_before
            s.checkpoint()

        srv = app_server(db, env=llm_env(llm))   # restart the app on the same file
        page.goto(srv.url + "/Generate")
        wait_for_app(page)
        page.get_by_text(f"{done_before}/{N_ITEMS} items").first.wait_for()
        resume = page.get_by_role("button", name="Resume")
        page.wait_for_function("() => { const b = [...document.querySelectorAll('button')]"
                               ".find(b => b.innerText.trim() === 'Resume'); return b && !b.disabled; }")
        screenshot(page, "reliability_job_after_restart")
        resume.click()
        deadline = time.time() + 60
        while time.time() < deadline and f"done · {N_ITEMS}/{N_ITEMS} items" not in progress_text(page):
            page.wait_for_timeout(1000)
            if f"{N_ITEMS}/{N_ITEMS}" not in progress_text(page):
                page.reload()               # the panel also polls on its own; a reload is the user's F5
                wait_for_app(page)
        assert f"done · {N_ITEMS}/{N_ITEMS} items" in progress_text(page), progress_text(page)
        screenshot(page, "reliability_job_resumed_done")
        srv.stop()

        resent = [b for b in llm.requests[sent_before:] if messages_key(b["messages"]) in answered]
        assert resent == [], f"{len(resent)} answered calls were sent again after the restart"
        assert len(llm.requests) > sent_before       # the rest of the job did run
        # over both runs no prompt reached the server twice (cache + frozen few-shot pools)
        keys = [messages_key(b["messages"]) for b in llm.requests]
        assert len(keys) == len(set(keys))

    with open_store(db, read_only=True) as s:
        assert s.scalar("SELECT status FROM jobs WHERE id = ?", [job_id]) == "done"
        per_item = s.rows("SELECT i.id, i.status, count(g.id) AS n FROM job_items i LEFT JOIN generations g "
                          "ON g.job_item_id = i.id WHERE i.job_id = ? GROUP BY ALL", [job_id])
        assert len(per_item) == N_ITEMS
        assert all(r["status"] == "succeeded" and r["n"] == 1 for r in per_item)
        assert s.scalar("SELECT count(*) FROM generations") == N_ITEMS
        assert s.scalar("SELECT count(*) FROM (SELECT generation_id FROM judgments GROUP BY 1 "
                        "HAVING count(*) > 1)") == 0
        assert s.scalar("SELECT count(*) FROM (SELECT payload_hash FROM llm_calls WHERE error IS NULL "
                        "GROUP BY 1 HAVING count(*) > 1)") == 0
