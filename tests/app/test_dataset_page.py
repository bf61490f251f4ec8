"""The Dataset page on a small curated set: metrics, checks, every chart, keep-one, export."""
from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.background import wait_for_tasks
from core.store import open_store
from tests.core.checks.seed_data import add_example, demo_dataset, distinct_python_solution, wave

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "5_Dataset.py")


def _prepare() -> dict:
    store = open_store(os.environ["SHOAL_DB"])
    demo_dataset(store, n=40)
    sol = distinct_python_solution(77)
    a = add_example(store, wave("Write a Python function to add up a list of prices.", sol), judge=True)
    b = add_example(store, wave("Write a Python function to add up a list of prices.", sol), verdict="accepted")
    n_accepted = store.scalar("SELECT count(*) FROM reviews WHERE verdict = 'accepted'")
    store.checkpoint()
    store.close()
    return {"dup": (a, b), "accepted": n_accepted}


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_dataset_page_checks_charts_and_export():
    info = _prepare()
    at = _run(AppTest.from_file(PAGE, default_timeout=240))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Generated examples"] == "42"
    assert metrics["Accepted"] == str(info["accepted"])
    assert any("No checks run yet" in i.value for i in at.info)

    # run the checks from the form
    at.button(key="FormSubmitter:ds_check_form-Run checks").click()
    _run(at)
    assert wait_for_tasks(240), "the checks did not finish"   # they run in a worker thread
    _run(at)
    assert any("Decontamination:" in s.value for s in at.success), [s.value for s in at.success]
    charts = at.get("plotly_chart")
    assert len(charts) == 8      # mix, lengths, categories, humaneval, acceptance x2, agreement, map

    # keep-one on the planted duplicate pair: keep the unreviewed one, the accepted one gets rejected
    a, b = info["dup"]
    def members(k):
        return {int(o.split()[0][1:]) for o in at.selectbox(key=k).options}
    group_keys = [s.key for s in at.selectbox if s.key and s.key.startswith("ds_keep_")]
    key = next((k for k in group_keys if {a, b} <= members(k)), None)
    assert key, "the planted duplicate pair is listed as one group"
    at.selectbox(key=key).set_value(a)
    at.button(key="ds_keep_btn_" + key.removeprefix("ds_keep_")).click()
    _run(at)

    # export: prepare a download of the accepted set; accepted examples a check leaves out are listed
    # first, and the export waits until the user confirms leaving them out
    at.selectbox(key="ds_fmt").set_value("alpaca")
    if at.button(key="ds_prepare").disabled:
        assert any("accepted would be left out by a check" in w.value for w in at.warning)
        at.button(key="ds_confirm_exclusions").click()
        _run(at)
    at.button(key="ds_prepare").click()
    _run(at)
    assert at.get("download_button"), "a download button after preparing the export"

    store = open_store(os.environ["SHOAL_DB"])
    try:
        assert store.scalar("SELECT verdict FROM reviews WHERE generation_id = ?", [b]) == "rejected"
        assert store.scalar("SELECT count(DISTINCT kind) FROM check_runs") == 2
        assert store.scalar("SELECT count(*) FROM exports") == 1
    finally:
        store.close()


def test_empty_database_points_to_generate():
    at = _run(AppTest.from_file(PAGE, default_timeout=60))
    assert any("No generated examples yet" in i.value for i in at.info)
