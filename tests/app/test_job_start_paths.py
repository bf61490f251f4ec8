"""The Generate page and `shoal generate` start a job through one function (core.generate.jobs.start.start_job)
and build the same job from the same choice: concurrency, models of both roles, tasks, limits.

Issue 20's set-up: the server is configured in the Models panel (nothing in the environment) for the
page, in the environment for the CLI. Before, the page's judge stayed on the embedded demo model, so
its job ran at concurrency 1 against a 135M model while the CLI's ran at 8 against the server."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from core.cli.main import app
from core.generate import jobs as J
from core.generate.jobs import start
from core.llm.concurrency import DEFAULT_CONCURRENCY
from core.store import open_store
from tests.support.openai_server import FakeOpenAIServer
from tests.support.selections import add_selection
from tests.support.shoal_responder import shoal_responder
from tests.support.snippets import add_snippets

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "3_Generate.py")
N = 6
PROVENANCE = ("name", "source", "selection_id")      # where the request came from: page or CLI


def _db(path: Path) -> None:
    store = open_store(path)
    add_selection(store, "demo-pick", add_snippets(store, N))
    store.checkpoint()
    store.close()


def _no_llm_env(monkeypatch) -> None:
    for k in list(os.environ):
        if k.startswith(("OPENAI_", "SHOAL_GENERATOR_", "SHOAL_JUDGE_")):
            monkeypatch.delenv(k)


def _spy(monkeypatch) -> list[dict]:
    seen: list[dict] = []
    real = start.job_params

    def spy(request, settings):
        params = real(request, settings)
        seen.append(params)
        return params
    monkeypatch.setattr(start, "job_params", spy)
    return seen


def _comparable(params: dict) -> dict:
    out = {k: v for k, v in params.items() if k not in PROVENANCE}
    out["profiles"] = {r: {k: v for k, v in p.public().items() if k != "source"} for r, p in params["profiles"].items()}
    return out


def _wait_for_workers(timeout: float = 60) -> None:
    deadline = time.time() + timeout
    for w in list(J._WORKERS.values()):
        w.join(max(0.1, deadline - time.time()))
        assert not w.is_alive(), "the job worker did not finish"


def _start_on_the_page(base_url: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    at.number_input(key="gen.limit").set_value(N)
    at.selectbox(key="gen.generator.preset").set_value("custom").run()      # the generator set in the panel
    at.text_input(key="gen.generator.base_url_in").input(base_url)
    at.text_input(key="gen.generator.model_in").input("fake-model").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="gen.judge.preset").value == "same"              # nobody set the judge apart
    line = next(c.value for c in at.caption if "The job will use" in c.value)
    assert f"generator: fake-model at {base_url}" in line and f"judge: fake-model at {base_url}" in line
    assert line.endswith(f"concurrency {DEFAULT_CONCURRENCY}")
    at.button(key="gen.start").click().run()
    assert not at.exception, at.exception
    return at


def test_the_page_and_the_cli_build_the_same_job_through_one_function(tmp_path, monkeypatch):
    _no_llm_env(monkeypatch)
    _db(Path(os.environ["SHOAL_DB"]))
    _db(tmp_path / "cli.duckdb")
    seen = _spy(monkeypatch)
    with FakeOpenAIServer(shoal_responder) as srv:
        _start_on_the_page(srv.base_url)
        _wait_for_workers()
        monkeypatch.setenv("SHOAL_GENERATOR_BASE_URL", srv.base_url)
        monkeypatch.setenv("SHOAL_GENERATOR_MODEL", "fake-model")
        res = CliRunner().invoke(app, ["--db", str(tmp_path / "cli.duckdb"), "generate", "--selection", "demo-pick",
                                       "--mix", "default", "-l", "java", "-l", "go"])
        assert res.exit_code == 0, res.output
    assert len(seen) == 2, "each face starts its job through core.generate.jobs.start"
    page, cli = (_comparable(p) for p in seen)
    assert page == cli
    assert page["concurrency"] == DEFAULT_CONCURRENCY
    assert page["profiles"]["judge"]["model"] == page["profiles"]["generator"]["model"] == "fake-model"
    store = open_store(os.environ["SHOAL_DB"])      # the page's job ran with what it showed
    job = J.get_job(store, store.scalar("SELECT max(id) FROM jobs"))
    assert job["params"]["concurrency"] == DEFAULT_CONCURRENCY and job["status"] == "done"
    store.close()


@pytest.mark.parametrize("judge_apart", [False, True])
def test_the_page_says_which_model_each_role_uses_before_a_job_starts(monkeypatch, judge_apart):
    _no_llm_env(monkeypatch)
    monkeypatch.setenv("SHOAL_GENERATOR_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("SHOAL_GENERATOR_MODEL", "gen-model")
    if judge_apart:
        monkeypatch.setenv("SHOAL_JUDGE_BASE_URL", "http://127.0.0.1:10/v1")
        monkeypatch.setenv("SHOAL_JUDGE_MODEL", "judge-model")
    _db(Path(os.environ["SHOAL_DB"]))
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    line = next(c.value for c in at.caption if "The job will use" in c.value)
    assert "generator: gen-model at http://127.0.0.1:9/v1" in line
    judge = "judge: judge-model at http://127.0.0.1:10/v1" if judge_apart else "judge: gen-model at http://127.0.0.1:9/v1"
    assert judge in line
