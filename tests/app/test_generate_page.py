"""The Generate page in Streamlit's AppTest: estimate, start a job (worker thread), examples with verdicts,
prompt editing creates a new version."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.generate import jobs as J
from core.store import open_store
from tests.support.openai_server import FakeOpenAIServer
from tests.support.selections import add_selection
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "3_Generate.py")


@pytest.fixture
def server(monkeypatch):
    with FakeOpenAIServer(shoal_responder) as srv:
        for k in list(os.environ):
            if k.startswith(("OPENAI_", "SHOAL_GENERATOR_", "SHOAL_JUDGE_")):
                monkeypatch.delenv(k)
        monkeypatch.setenv("SHOAL_GENERATOR_BASE_URL", srv.base_url)
        monkeypatch.setenv("SHOAL_GENERATOR_MODEL", "fake-model")
        yield srv


def _prepare_db(n: int = 12) -> None:
    store = open_store(os.environ["SHOAL_DB"])
    ids = add_snippets(store, n)
    add_selection(store, "demo-pick", ids)
    store.checkpoint()
    store.close()


def _wait_for_workers(timeout: float = 60) -> None:
    deadline = time.time() + timeout
    for w in list(J._WORKERS.values()):
        w.join(max(0.1, deadline - time.time()))
        assert not w.is_alive(), "the job worker did not finish"


def test_generate_page_estimates_starts_a_job_and_shows_verdicts(server):
    _prepare_db()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Items"] == "12" and metrics["LLM calls (before retries)"] == "24"
    assert at.selectbox(key="gen.selection").value == "demo-pick"

    at.button(key="gen.start").click().run()
    assert not at.exception, at.exception
    _wait_for_workers()
    at.run()
    assert not at.exception, at.exception
    labels = [e.label for e in at.expander]
    verdicts = [l for l in labels if l.startswith("#")]
    assert verdicts and all(("judge: pass" in l or "judge: fail" in l or "pre-filter" in l) for l in verdicts)
    assert any("done" in p.proto.text for p in at.get("progress"))
    assert {m.label: m.value for m in at.metric}["Generated"] == "12"

    # the judge follows the generator (issue 20) until it is given its own endpoint; then it has its own test
    assert at.selectbox(key="gen.judge.preset").value == "same"
    at.selectbox(key="gen.judge.preset").set_value("custom").run()
    at.text_input(key="gen.judge.base_url_in").set_value(server.base_url).run()
    at.button(key="gen.judge.test").click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("judge: ok=True") for s in at.success)

    from ui.common import _store
    store = _store(os.environ["SHOAL_DB"])
    assert store.scalar("SELECT count(*) FROM generations") == 12
    assert store.scalar("SELECT count(DISTINCT task) FROM generations") >= 3       # the CodeOcean mix
    assert len(server.requests) >= 12


def test_editing_rules_saves_a_new_prompt_version_and_the_preview_uses_it(server):
    _prepare_db(3)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    at.selectbox(key="gen.prompt_task").select("code_repair").run()
    rules_area = next(t for t in at.text_area if t.label.startswith("Judge rules"))
    rules_area.set_value(rules_area.value + "\nThe bug changes the function's output for some input.").run()
    req_area = next(t for t in at.text_area if t.label.startswith("Requirements"))
    req_area.set_value(req_area.value + "\nPREVIEW-MARKER requirement.").run()
    assert any("PREVIEW-MARKER requirement." in c.value for c in at.code)     # preview shows the edit live
    next(b for b in at.button if b.label == "Save as new version").click().run()
    assert not at.exception, at.exception
    assert any("v2" in s.value for s in at.success)

    from ui.common import _store
    store = _store(os.environ["SHOAL_DB"])
    rows = store.rows("SELECT version, content FROM prompt_versions WHERE task = 'code_repair' ORDER BY version")
    assert [r["version"] for r in rows] == [1, 2]
    assert "The bug changes the function's output for some input." in rows[1]["content"]
