"""The Evaluate page: runs with pass@1 and its interval, the comparison of two runs in words, and an
evaluation started from the page (a background task against a loopback server)."""
from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.background import wait_for_tasks
from core.config import Profile
from core.evaluate import EvalSpec, run_eval
from core.store import open_store
from tests.support.humaneval import SOLVED, humaneval_responder
from tests.support.openai_server import FakeOpenAIServer

PAGE = str(Path(__file__).resolve().parents[3] / "pages" / "7_Evaluate.py")


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_evaluate_page_lists_runs_compares_them_and_starts_one():
    store = open_store(os.environ["SHOAL_DB"])
    with FakeOpenAIServer(humaneval_responder(SOLVED)) as s1, \
            FakeOpenAIServer(humaneval_responder(set(range(16))), model="strong") as s2:
        run_eval(store, EvalSpec("humaneval", limit=20), Profile(role="generator", base_url=s1.base_url, model="weak"))
        run_eval(store, EvalSpec("humaneval", limit=20), Profile(role="generator", base_url=s2.base_url, model="strong"))
        store.checkpoint()
        store.close()
        at = _run(AppTest.from_file(PAGE, default_timeout=120))
        table = at.dataframe[0].value
        assert list(table["pass@1"]) == ["80.0%", "35.0%"] and list(table["model"]) == ["strong", "weak"]
        assert all(" – " in v for v in table["95% interval"])
        assert any("The difference is real" in s.value for s in at.success), [s.value for s in at.success]

        at.selectbox(key="ev_bench").set_value("humaneval")
        at.number_input(key="ev_limit").set_value(5)
        at.text_input(key="ev_base_url").input(s1.base_url)
        at.text_input(key="ev_model").input("weak")
        at.button(key="FormSubmitter:ev_form-Evaluate").click()
        _run(at)
        assert wait_for_tasks(120), "the evaluation did not finish"
        _run(at)
        _run(at)
    assert any("pass@1 60.0%" in s.value for s in at.success), [s.value for s in at.success]   # 3 of the first 5
    assert len(at.dataframe[0].value) == 3
