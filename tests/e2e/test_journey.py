"""The whole Shoal journey in headless Chromium, every step through the UI, on a fresh database:

Corpus (demo ingest) → Map (embed, UMAP map, k-center pick of 12) → Generate (fake OpenAI server as
generator and judge) → Review (accept, reject with a note, edit + accept) → Dataset (checks, Alpaca
export) → the export read back with pandas and the database inspected after the app has stopped.
One screenshot per page goes to test-artifacts/journey-<n>-<page>.png.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from core.store import open_store
from tests.support.browser import (
    ALL_TEXT_SELECTED,
    full_page_shot,
    metric_value,
    no_exception,
    wait_for_app,
    wait_metric_at_least,
    wait_or_fail,
)
from tests.support.journey import BUDGET, DEMO_MODULES, SELECTION, corpus_step
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import shoal_responder

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REVIEWER = "journey"
EDITED_TEXT = "Write a clear Python function for this, edited by the journey test."
NOTE = "judge missed a wrong answer"

SHOWN_GID_JS = """() => {
  const h = [...document.querySelectorAll('h3')].map(e => e.innerText).find(t => t.includes('Example #'));
  const m = h && h.match(/Example #(\\d+)/);
  return m ? Number(m[1]) : null;
}"""


def shown_gid(page) -> int | None:
    return page.evaluate(SHOWN_GID_JS)


def wait_gid_changes(page, old: int | None, timeout: float = 30_000) -> int:
    page.wait_for_function(
        f"() => {{ const g = ({SHOWN_GID_JS})(); return g !== null && g !== {json.dumps(old)}; }}", timeout=timeout)
    wait_for_app(page)
    return shown_gid(page)


# --------------------------------------------------------------------------- the steps


def map_step(page, url: str) -> None:
    page.goto(url + "/Map")
    wait_for_app(page)
    page.get_by_text("No map yet").wait_for()
    page.get_by_role("button", name="Embed and build map").click()
    # embedding model load + UMAP (numba compile on a cold process) are the slow part of the journey
    wait_or_fail(page, "iframe[title*='shoal_map']", timeout=300_000)   # the map component's frame
    page.get_by_text("Pick the most diverse snippets").wait_for(timeout=60_000)
    wait_for_app(page)
    assert page.locator("[data-testid='stMultiSelect']").filter(has_text="Clusters").count() == 1
    budget = page.get_by_label("Budget")
    budget.fill(str(BUDGET))
    budget.press("Tab")
    name = page.get_by_label("Name")
    name.fill(SELECTION)
    name.press("Tab")
    page.get_by_role("button", name="Select", exact=True).click()
    page.get_by_text(f"Saved selection {SELECTION}").wait_for(timeout=60_000)
    wait_for_app(page)
    page.get_by_text("kcenter (this selection)").first.wait_for()
    no_exception(page)
    full_page_shot(page, "journey-2-map")


def generate_step(page, url: str) -> None:
    page.goto(url + "/Generate")
    wait_for_app(page)
    # the newest selection is the default source; the plan shows one item per selected snippet
    page.get_by_role("radiogroup").filter(has_text="Selection").first.wait_for()
    page.locator("[data-testid='stMetric']").filter(has_text="Items").wait_for()
    assert metric_value(page, "Items") == str(BUDGET)
    page.get_by_role("button", name="Start job").click()
    page.get_by_text(f"done · {BUDGET}/{BUDGET} items").wait_for(timeout=120_000)
    wait_metric_at_least(page, "Generated", 1, 30_000)
    # the newest examples with their judge verdicts are listed
    page.locator("[data-testid='stExpander']").filter(has_text="judge:").first.wait_for(timeout=30_000)
    no_exception(page)
    full_page_shot(page, "journey-3-generate")


def review_step(page, url: str) -> dict:
    """Accept the first example, reject the second with a note, edit the third and accept it."""
    page.goto(url + "/Review")
    wait_for_app(page)
    page.wait_for_function(f"() => ({SHOWN_GID_JS})() !== null", timeout=60_000)
    page.wait_for_selector("button:has-text('Accept')", state="visible", timeout=60_000)
    page.wait_for_selector("[data-testid='stCode'] pre", timeout=60_000)
    wait_for_app(page)
    accepted = shown_gid(page)

    page.keyboard.press("a")
    rejected = wait_gid_changes(page, accepted)
    page.wait_for_selector("[data-testid='stToast']:has-text('Accepted #%d')" % accepted)

    page.keyboard.press("x")
    page.wait_for_function("() => document.activeElement && "
                           "document.activeElement.getAttribute('aria-label') === 'Reject note'")
    page.keyboard.type(NOTE)
    page.keyboard.press("Enter")
    edited = wait_gid_changes(page, rejected)

    page.keyboard.press("e")
    page.wait_for_function(ALL_TEXT_SELECTED)
    field = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    page.keyboard.type(EDITED_TEXT)                          # the field's text is selected: replaced
    page.keyboard.press("Control+Enter")
    after = wait_gid_changes(page, edited)
    assert len({accepted, rejected, edited, after}) == 4
    page.wait_for_selector("[data-testid='stToast']:has-text('Accepted (edited) #%d')" % edited)
    no_exception(page)
    full_page_shot(page, "journey-4-review")
    return {"accepted": accepted, "rejected": rejected, "edited": edited, "field": field}


def dataset_step(page, url: str, out: Path) -> None:
    page.goto(url + "/Dataset")
    wait_for_app(page, timeout=120_000)
    page.get_by_role("heading", name="Checks").wait_for(timeout=120_000)
    assert metric_value(page, "Accepted") == "2"
    assert metric_value(page, "Rejected") == "1"
    page.get_by_role("button", name="Run checks").click()
    page.get_by_text("Decontamination:").wait_for(timeout=120_000)
    wait_for_app(page, timeout=180_000)
    page.get_by_role("heading", name="Export").wait_for(timeout=180_000)
    page.get_by_text("examples will be exported").wait_for()
    folder = page.get_by_placeholder("/path/to/my-dataset")
    folder.fill(str(out))
    folder.press("Tab")
    wait_for_app(page, timeout=120_000)
    page.get_by_role("button", name="Export to folder").click()
    done = page.locator("[data-testid='stAlertContentSuccess']").filter(has_text="examples to")
    done.or_(page.locator("[data-testid='stAlertContentError']")).first.wait_for(timeout=60_000)
    errors = page.locator("[data-testid='stAlertContentError']")
    assert errors.count() == 0, errors.first.inner_text()
    wait_for_app(page, timeout=120_000)
    wrote = done.first.inner_text()
    planned = page.get_by_text("examples will be exported").first.inner_text()
    assert wrote.startswith("Wrote 2 examples"), f"{wrote!r}; {planned!r}"   # both accepted ones, none held back
    no_exception(page)
    full_page_shot(page, "journey-5-dataset")


# --------------------------------------------------------------------------- the test

def test_whole_journey_in_the_browser(tmp_path, page, app_server):
    t0 = time.monotonic()
    db, out = tmp_path / "journey.duckdb", tmp_path / "export-alpaca"
    with FakeOpenAIServer(shoal_responder) as llm:
        srv = app_server(db, env={"SHOAL_DEMO_SOURCE": DEMO_MODULES, "USER": REVIEWER, "HF_HUB_OFFLINE": "1",
                                  "SHOAL_GENERATOR_BASE_URL": llm.base_url, "SHOAL_GENERATOR_MODEL": "fake-model"})
        timings: dict[str, float] = {}

        def timed(name, step, *args):
            t = time.monotonic()
            result = step(page, srv.url, *args)
            timings[name] = round(time.monotonic() - t, 1)
            return result

        n_shown = timed("corpus", corpus_step)
        timed("map", map_step)
        timed("generate", generate_step)
        picks = timed("review", review_step)
        timed("dataset", dataset_step, out)
        srv.stop()
        n_llm_requests = len(llm.requests)
    print(f"journey step seconds: {timings}, total {time.monotonic() - t0:.1f}")

    # ---- the export, read back without Shoal
    rows = pd.read_json(out / "train.jsonl", lines=True)
    assert (out / "README.md").is_file()
    assert list(rows.columns[:3]) == ["instruction", "input", "output"]
    by_gid = {int(p["generation_id"]): r for p, r in zip(rows["provenance"], rows.to_dict("records"))}
    assert set(by_gid) == {picks["accepted"], picks["edited"]}          # exactly the accepted ones
    edited_row = by_gid[picks["edited"]]
    assert edited_row["provenance"]["edited"] is True and by_gid[picks["accepted"]]["provenance"]["edited"] is False
    assert all(r["provenance"]["reviewer"] == REVIEWER for r in by_gid.values())

    # ---- the database, after the app has let go of it
    with open_store(db) as s:
        count = lambda table: int(s.scalar(f"SELECT count(*) FROM {table}"))  # noqa: E731
        n = count("snippets")
        assert n == n_shown and 20 <= n <= 300
        assert count("ingests") == 1 and s.scalar("SELECT status FROM ingests") == "done"
        # every snippet embedded (the Dataset page's category chart caches example vectors there too)
        assert count("embeddings") >= n and count("maps") == 1 and count("map_points") == n
        assert count("clusters") >= 2
        sel = s.one("SELECT * FROM selections")
        assert count("selections") == 1 and sel["name"] == SELECTION and sel["method"] == "kcenter"
        # the Map page's default snippet kinds: functions only, when the corpus mixes in OSS-Instruct seeds
        n_functions = int(s.scalar("SELECT count(*) FROM snippets WHERE kind = 'function'"))
        assert 0 < n_functions < n
        assert sel["n_items"] == BUDGET and sel["n_candidates"] == n_functions and count("selection_items") == BUDGET

        assert count("jobs") == 1 and s.scalar("SELECT status FROM jobs") == "done"
        items = dict(s.execute("SELECT status, count(*) FROM job_items GROUP BY 1").fetchall())
        assert sum(items.values()) == BUDGET and items.get("succeeded", 0) >= BUDGET - 1, items
        assert not s.scalar("SELECT count(*) FROM job_items WHERE status = 'failed' AND coalesce(error, '') = ''")
        gens = count("generations")
        assert gens == items.get("succeeded", 0)
        assert set(r[0] for r in s.execute(
            "SELECT g.snippet_id FROM generations g").fetchall()) <= set(r[0] for r in s.execute(
                "SELECT snippet_id FROM selection_items").fetchall())
        judged = count("judgments")
        assert judged == int(s.scalar("SELECT count(*) FROM generations WHERE parse_ok AND prefilter_ok"))
        assert judged >= 1
        assert count("llm_calls") >= gens + judged and n_llm_requests >= gens + judged

        reviews = {r["generation_id"]: r for r in s.rows("SELECT * FROM reviews")}
        assert set(reviews) == {picks["accepted"], picks["rejected"], picks["edited"]}
        assert reviews[picks["accepted"]]["verdict"] == "accepted" and reviews[picks["accepted"]]["edited_fields"] is None
        assert (reviews[picks["rejected"]]["verdict"], reviews[picks["rejected"]]["note"]) == ("rejected", NOTE)
        ed = reviews[picks["edited"]]
        assert ed["verdict"] == "accepted" and json.loads(ed["edited_fields"])[picks["field"]] == EDITED_TEXT
        assert {r["reviewer"] for r in reviews.values()} == {REVIEWER}
        assert [r[0] for r in s.execute("SELECT action FROM audit_log WHERE action LIKE 'review.%'").fetchall()] \
            == ["review.decide"] * 3

        kinds = {r[0] for r in s.execute("SELECT kind FROM check_runs").fetchall()}
        assert {"decontamination", "near_duplicate"} <= kinds
        assert int(s.scalar("SELECT count(DISTINCT generation_id) FROM checks")) == gens

        exp = s.one("SELECT * FROM exports")
        assert count("exports") == 1 and exp["format"] == "alpaca" and exp["n_rows"] == 2
        assert Path(exp["path"]) == out.resolve()
        generated = {g: json.loads(f) for g, f in s.execute("SELECT id, fields FROM generations").fetchall()}

    # the edit is in the export, the untouched example is exported as generated
    field = picks["field"]
    export_key = {"instruction": "instruction", "problem": "instruction", "information": "input",
                  "solution": "output"}[field]
    assert edited_row[export_key] == EDITED_TEXT
    plain = by_gid[picks["accepted"]]
    src = generated[picks["accepted"]]
    assert plain["output"] == src["solution"]
    assert plain["instruction"] == src.get("instruction", src.get("problem"))
