"""The Generate page's job panel runs in the process the job runs in: what it redraws every second while a
job runs must stay small (issue 20: with the whole panel -- eight examples with their code and rule tables,
the pacing table -- redrawn every second, the job's event loop was starved and the job ran at a third of the
CLI's speed; bench/bench_app_vs_cli.py measures it)."""
from __future__ import annotations

import os

from streamlit.testing.v1 import AppTest

from core.config import Profile
from core.generate import jobs as J
from core.store import Store, open_store
from tests.support.snippets import add_snippets

MAX_READS_PER_REFRESH = 16


def _running_job() -> int:
    store = open_store(os.environ["SHOAL_DB"])
    ids = add_snippets(store, 12)
    profiles = {r: Profile(role=r, base_url="http://127.0.0.1:9/v1", model="m") for r in ("generator", "judge")}
    job = J.create_job(store, ids, profiles=profiles, task="code_generation")
    store.write(lambda cur: cur.execute("UPDATE jobs SET status = 'running', heartbeat_at = current_timestamp "
                                        "WHERE id = ?", [job]))
    store.checkpoint()
    store.close()
    return job


def _progress_script() -> None:
    from ui.common import page_store
    from ui.generate.job_panel import _progress
    _progress(page_store(), 1, True)


def test_the_every_second_refresh_reads_little_and_draws_no_examples_or_tables(monkeypatch):
    from ui.generate import job_panel as panel
    assert panel.POLL_S >= 1.0 and panel.DETAILS_POLL_S >= 5 * panel.POLL_S
    assert _running_job() == 1
    at = AppTest.from_function(_progress_script, default_timeout=30).run()     # the store opens here
    assert not at.exception, at.exception
    reads = []
    for name in ("rows", "one", "scalar", "df", "execute"):
        real = getattr(Store, name)
        monkeypatch.setattr(Store, name, lambda self, *a, _real=real, **k: (reads.append(1), _real(self, *a, **k))[1])
    at.run()
    assert not at.exception, at.exception
    assert 0 < len(reads) <= MAX_READS_PER_REFRESH
    assert [m.label for m in at.metric][:3] == ["Generated", "Failed", "Pending"]
    assert not at.dataframe and not at.expander and not at.get("code")     # tables and examples: every 5 s, asked


def test_while_a_job_runs_the_newest_examples_are_drawn_only_when_asked_for(monkeypatch):
    monkeypatch.setattr(J, "latest_examples", lambda *a, **k: [])
    monkeypatch.setattr(J, "failed_items", lambda *a, **k: [])

    def script() -> None:
        import streamlit as st

        from ui.generate.job_panel import _examples_section
        _examples_section(None, 1, {"prefilter_reasons": []}, alive=bool(st.session_state.get("alive", True)))
    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception, at.exception
    assert not at.expander and at.toggle(key="gen.live_examples").value is False
    at.toggle(key="gen.live_examples").set_value(True).run()
    assert [e.label for e in at.expander] == ["Latest examples and failures"]
    at.session_state["alive"] = False
    at.toggle(key="gen.live_examples").set_value(False).run()
    assert [e.label for e in at.expander] == ["Latest examples and failures"]      # a finished job: always
