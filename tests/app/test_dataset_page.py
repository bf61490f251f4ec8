"""The Dataset page on a small curated set: metrics, checks, every chart, keep-one, export."""
from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.background import wait_for_tasks
from core.store import open_store
from tests.support.seed_data import add_example, demo_dataset, distinct_python_solution, wave

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


def test_push_an_export_to_the_hub_with_a_typed_token(tmp_path, monkeypatch):
    """Export to a folder, then push it from the page with a token typed there: a wrong one gives an error
    without the token; the right one lands the folder on the (loopback) Hub and shows the repo's URL.
    The typed token is in the redaction list, and nowhere in the database afterwards."""
    import json

    from core.redact import MARK, redact
    from tests.support.hf_hub_server import FakeHub, point_hub_client_at
    from ui.text import plain

    store = open_store(os.environ["SHOAL_DB"])
    for i in range(3):
        add_example(store, wave(f"Write a Python function number {i}.", distinct_python_solution(300 + i)),
                    verdict="accepted", judge=True)
    store.checkpoint()
    store.close()
    typed = "page-typed-secret-5c1d9e7a42"
    with FakeHub(token=typed) as hub:
        point_hub_client_at(hub, monkeypatch)
        at = _run(AppTest.from_file(PAGE, default_timeout=240))
        assert any("Export to a folder first" in c.value for c in at.caption)
        out = tmp_path / "my-dataset"
        at.text_input(key="ds_out").set_value(str(out))
        _run(at)
        at.button(key="ds_export_folder").click()
        _run(at)
        assert any("Wrote 3 examples" in s.value for s in at.success), [s.value for s in at.success]

        at.text_input(key="ds_hub_repo").set_value("me/shoal-set")
        at.text_input(key="ds_hub_token").set_value("wrong-token-0123456789")
        _run(at)
        assert any("the token typed here" in c.value for c in at.caption)
        at.button(key="ds_hub_push").click()
        _run(at)
        errors = [e.value for e in at.error]
        assert any("refused the token" in e for e in errors), errors
        assert not any("wrong-token-0123456789" in e for e in errors)

        at.text_input(key="ds_hub_token").set_value(typed)
        at.checkbox(key="ds_hub_private").check()
        at.button(key="ds_hub_push").click()
        _run(at)
        url = f"{hub.url}/datasets/me/shoal-set"
        assert any(plain(url) in s.value for s in at.success), [s.value for s in at.success]
        local = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert hub.files("me/shoal-set") == local and {"README.md", "train.jsonl"} <= set(local)
        assert hub.repos["me/shoal-set"]["private"] is True
        assert redact(f"key {typed}") == f"key {MARK}"       # registered for redaction while typed

    store = open_store(os.environ["SHOAL_DB"])
    try:
        tables = [r["table_name"] for r in store.rows(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'")]
        assert "exports" in tables and len(tables) > 10
        for t in tables:
            text = json.dumps(store.rows(f'SELECT * FROM "{t}"'), default=str)
            assert typed not in text and "wrong-token-0123456789" not in text, t
        params = json.loads(store.scalar("SELECT params FROM exports ORDER BY id DESC LIMIT 1"))
        assert params["pushed_to"] == url and params["pushed_private"] is True
    finally:
        store.close()
