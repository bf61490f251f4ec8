"""The first hour of a new user (issue 15) in headless Chromium, against a scripted loopback
OpenAI-compatible server: load the demo, map, select, generate, reload mid-job, review a
pre-filtered example, tick every check, export. At each step the page must show the true state:
the running job's progress in view, Home's running indicator, the form (and so the selection a
Start uses) after a reload, one job at a time on the server, the reasons for every exclusion.
Screenshots go to test-artifacts/first-hour-<n>-<step>.png.
"""
from __future__ import annotations

import json
import re
import threading

import pandas as pd
import pytest

from core.store import open_store
from tests.support.browser import (
    MAP_FRAME,
    choose,
    full_page_shot,
    metric_value,
    no_exception,
    screenshot,
    wait_for_app,
    wait_or_fail,
)
from tests.support.journey import BUDGET, DEMO_MODULES, SELECTION, corpus_step
from tests.support.openai_server import FakeOpenAIServer
from tests.support.shoal_responder import _TASK_RE, shoal_responder

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(2400)]  # embed + UMAP on a busy machine

REVIEWER = "firsthour"
SECOND_LIMIT = 6


def first_hour_responder(body: dict) -> str:
    """shoal_responder, except that every summarization instruction runs to four sentences, so the
    pre-filter stops those examples (instruction_too_long) before the judge."""
    reply = shoal_responder(body)
    prompt = "\n".join(m.get("content") or "" for m in body.get("messages") or [] if m.get("role") == "user")
    m = _TASK_RE.search(prompt)
    if m and m.group(1) == "code_summarization" and "## Example to judge" not in prompt:
        data = json.loads(reply)
        data["instruction"] = data["instruction"].rstrip(".") + ". Be brief. Use plain words. Name the inputs."
        reply = json.dumps(data)
    return reply


class Valve:
    """Lets the server answer only as many calls as the test allows, so "the job still runs" is a
    fact the test makes, not a race against how busy the machine is."""

    def __init__(self, allowed: int = 0):
        self._cond = threading.Condition()
        self._allowed: float = allowed

    def allow(self, n: int) -> None:
        with self._cond:
            self._allowed += n
            self._cond.notify_all()

    def open(self) -> None:
        self.allow(10**9)

    def wrap(self, responder):
        def gated(body: dict) -> str:
            with self._cond:
                self._cond.wait_for(lambda: self._allowed > 0)
                self._allowed -= 1
            return responder(body)
        return gated


def in_view(page, locator) -> bool:
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def progress_text(page) -> str:
    return page.locator("[data-testid='stProgress']").first.inner_text()


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_role("spinbutton", name=label, exact=True)
    box.fill(str(value))
    box.press("Tab")
    wait_for_app(page)


def wait_metric(page, label: str, expected: str, timeout: float = 30_000) -> None:
    """The metric `label` shows `expected`: after a widget change the rerun that redraws it may start
    only after the page looked idle once, so reading it at once can see the old value."""
    try:
        page.wait_for_function(
            "([label, want]) => [...document.querySelectorAll('[data-testid=stMetric]')].some(e =>"
            " e.querySelector('[data-testid=stMetricLabel]')?.innerText.trim() === label &&"
            " e.querySelector('[data-testid=stMetricValue]')?.innerText.trim() === want)",
            arg=[label, expected], timeout=timeout)
    except Exception:
        raise AssertionError(f"{label} shows {metric_value(page, label)!r}, not {expected!r}") from None


def wait_value(page, label: str, expected: str, timeout: float = 15_000) -> None:
    """The number input `label` shows `expected` (the page may still be drawing right after a reload)."""
    page.wait_for_function(
        "([label, want]) => { const e = document.querySelector(`input[aria-label=\"${label}\"]`);"
        " return !!e && e.value === want; }", arg=[label, expected], timeout=timeout)


def shown_choice(page, label: str) -> str:
    """What the selectbox labelled exactly `label` shows (its text and its input's value)."""
    return page.evaluate(
        "(label) => { const box = [...document.querySelectorAll('[data-testid=stSelectbox]')].find(b =>"
        " b.querySelector('label')?.innerText.trim() === label); if (!box) return '';"
        " const sel = box.querySelector('[data-baseweb=select]') || box;"
        " return sel.innerText + ' ' + [...sel.querySelectorAll('input')].map(i => i.value).join(' '); }", label)


def cut_off(locator) -> bool:
    """Whether the text (or a box around it, up to its widget) is clipped: wider than it is shown."""
    return locator.evaluate(
        "(el) => { for (let e = el; e && !e.matches('[data-testid=stCheckbox]'); e = e.parentElement)"
        " if (e.scrollWidth > e.clientWidth + 1) return true; return false; }")


# --------------------------------------------------------------------------- the steps

LONELIEST_PIXEL = """() => { const P = document.getElementById('plot'), L = P._fullLayout, pts = [];
  P.data.forEach(t => { if (!(t.meta && t.meta.overlay)) Array.from(t.x || []).forEach((x, i) => pts.push([x, t.y[i]])); });
  let best = -1, at = 0;
  pts.forEach((p, i) => { let m = Infinity;
    pts.forEach((q, j) => { if (i !== j) m = Math.min(m, (p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2); });
    if (m > best) { best = m; at = i; } });
  return [L.xaxis.l2p(pts[at][0]) + L._size.l, L.yaxis.l2p(pts[at][1]) + L._size.t, pts.length]; }"""


def click_a_point(page) -> None:
    """Click the map's loneliest point (a click on it cannot hit another): the page shows its code."""
    page.frame_locator(MAP_FRAME).locator("body[data-points]").wait_for(timeout=120_000)
    frame = next(f for f in page.frames if "shoal_map" in f.url)
    frame.wait_for_function("() => { const P = document.getElementById('plot'); return P && P._fullLayout; }")
    px, py, n = frame.evaluate(LONELIEST_PIXEL)
    assert n > 0, "the map draws its points"
    box = page.locator(MAP_FRAME).bounding_box()
    page.mouse.click(box["x"] + px, box["y"] + py)
    page.get_by_test_id("stCode").filter(has_text="def ").first.wait_for(timeout=60_000)
    wait_for_app(page)


def map_step(page, url: str) -> None:
    """Embed, map, click a point (its code shows), then pick BUDGET snippets (as the journey test does,
    with room for a busy machine)."""
    page.goto(url + "/Map")
    wait_for_app(page)
    page.get_by_text("No map yet").wait_for()
    page.get_by_role("button", name="Embed and build map").click()
    wait_or_fail(page, "iframe[title*='shoal_map']", timeout=900_000)   # the map component's frame
    page.get_by_text("Pick the most diverse snippets").wait_for(timeout=120_000)
    wait_for_app(page, timeout=120_000)
    click_a_point(page)
    set_number(page, "Budget", BUDGET)
    name = page.get_by_label("Name")
    name.fill(SELECTION)
    name.press("Tab")
    page.get_by_role("button", name="Select", exact=True).click()
    page.get_by_text(f"Saved selection {SELECTION}").wait_for(timeout=120_000)
    wait_for_app(page)
    no_exception(page)


def corpus_next_step(page, url: str) -> None:
    """After a map and a selection, the Corpus page's next step is to generate (not to embed)."""
    page.goto(url + "/Corpus")
    wait_for_app(page)
    nxt = page.locator("[data-testid='stAlertContentInfo']").filter(has_text="Next step").first
    nxt.wait_for()
    assert "Generate" in nxt.inner_text() and "Embed" not in nxt.inner_text(), nxt.inner_text()
    assert metric_value(page, "Duplicates").replace(",", "").isdigit()   # the ingest's count is shown
    assert metric_value(page, "Already present") == "0"


def start_first_job(page, url: str) -> int:
    page.goto(url + "/Generate")
    wait_for_app(page)
    page.locator("[data-testid='stMetric']").filter(has_text="Items").wait_for()
    assert metric_value(page, "Items") == str(BUDGET)
    page.get_by_text("Concurrency, budget and few-shot pools").click()
    set_number(page, "Concurrency (items in flight)", 2)
    page.get_by_role("button", name="Start job").click()
    wait_for_app(page)
    bar = page.locator("[data-testid='stProgress']").first
    bar.wait_for()
    text = progress_text(page)
    m = re.match(r"Job #(\d+) · (\w+)", text)
    assert m and m.group(2) in ("running", "pending"), text
    assert in_view(page, bar), "the running job's progress is in view after Start"
    screenshot(page, "first-hour-3-generate-started")
    return int(m.group(1))


def home_shows_running(page, url: str, first: int, second: int) -> None:
    page.goto(url)
    wait_for_app(page)
    page.get_by_text("⏳ running").first.wait_for(timeout=10_000)
    running = page.locator("[data-testid='stAlertContentInfo']").filter(has_text="Running now").first
    text = running.inner_text()
    assert f"Job #{first}" in text or f"Job #{second}" in text, text
    if f"Job #{first}:" in text:                     # the first still runs: the second waits for it
        assert f"Job #{second} queued after #{first}" in text, text
    screenshot(page, "first-hour-5-home-running")


def second_tab_follows_the_job(page, url: str, valve: Valve) -> None:
    """A Review tab opened while the job runs shows the new examples without a reload."""
    tab = page.context.new_page()
    try:
        tab.goto(url + "/Review")
        wait_for_app(tab)
        queue = tab.locator("[data-testid='stMarkdownContainer']").filter(has_text=re.compile(r"Queue .* of \d+")).first
        queue.wait_for(timeout=60_000)
        before = int(re.search(r"of (\d+)", queue.inner_text()).group(1))
        valve.allow(4)                                     # two more items' calls, then it holds again
        tab.wait_for_function(
            "(n) => { const m = [...document.querySelectorAll('[data-testid=stMarkdownContainer]')]"
            ".map(e => e.innerText.match(/Queue .*? of (\\d+)/)).find(Boolean); return m && Number(m[1]) > n; }",
            arg=before, timeout=90_000)
    finally:
        tab.close()


def reload_mid_job_and_queue(page, url: str, first: int) -> int:
    """Change the form, reload: the form is as it was, and the next Start uses it (queued behind the first)."""
    page.goto(url + "/Generate")
    wait_for_app(page)
    set_number(page, "At most", SECOND_LIMIT)
    wait_metric(page, "Items", str(SECOND_LIMIT))
    assert f"Job #{first}" in progress_text(page) and "running" in progress_text(page)
    page.reload()
    wait_for_app(page)
    page.locator("[data-testid='stMetric']").filter(has_text="Items").wait_for()
    wait_value(page, "At most", str(SECOND_LIMIT))
    wait_metric(page, "Items", str(SECOND_LIMIT))
    assert SELECTION in shown_choice(page, "Selection")
    page.get_by_text("Concurrency, budget and few-shot pools").click()
    wait_value(page, "Concurrency (items in flight)", "2")
    # the first job still runs on this server: the page says so and queues the next one
    page.get_by_text("is running on this server").wait_for()
    page.get_by_role("button", name="Start job").click()
    wait_for_app(page)
    note = page.locator("[data-testid='stAlertContentSuccess']").filter(has_text="queued").first
    note.wait_for()
    second = int(re.search(r"Job (\d+) queued", note.inner_text()).group(1))
    assert second != first
    assert progress_text(page).startswith(f"Job #{second} · queued after #{first}"), progress_text(page)
    assert in_view(page, page.locator("[data-testid='stProgress']").first)
    screenshot(page, "first-hour-4-generate-queued")
    return second


def wait_until_done(page, url: str, second: int) -> None:
    page.goto(url + "/Generate")
    wait_for_app(page)
    page.get_by_text(f"Job #{second} · done").wait_for(timeout=300_000)
    wait_for_app(page)
    no_exception(page)
    full_page_shot(page, "first-hour-6-generate-done")
    page.goto(url)
    wait_for_app(page)
    assert page.get_by_text("⏳ running").count() == 0          # Home: nothing runs any more


def review_prefiltered(page, url: str) -> int:
    page.goto(url + "/Review")
    wait_for_app(page)
    page.get_by_role("button", name="Accept").first.wait_for()
    choose(page, "Judge verdict", "unjudged", page.locator("[data-testid='stSidebar']"))
    warn = page.locator("[data-testid='stAlertContentWarning']").filter(has_text="Stopped by the pre-filter").first
    warn.wait_for()
    assert "instruction_too_long" in warn.inner_text() or "instruction\\_too\\_long" in warn.inner_text()
    gid = int(re.search(r"Example #(\d+)", page.locator("h3").filter(has_text="Example #").first.inner_text())
              .group(1))
    page.locator(".st-key-rv_accept button").click()
    page.locator(".st-key-rv_accept_anyway button").wait_for()
    screenshot(page, "first-hour-7-review-prefiltered")
    page.locator(".st-key-rv_accept_anyway button").click()
    page.wait_for_selector("[data-testid='stToast']:has-text('flagged in the export')")
    wait_for_app(page)
    # and one judged example, accepted the usual way
    choose(page, "Judge verdict", "passed", page.locator("[data-testid='stSidebar']"))
    page.locator(".st-key-rv_accept button").click()
    page.wait_for_selector("[data-testid='stToast']:has-text('Accepted #')")
    wait_for_app(page)
    no_exception(page)
    return gid


def check_and_export(page, url: str, out) -> str:
    page.goto(url + "/Dataset")
    wait_for_app(page, timeout=120_000)
    page.get_by_role("heading", name="Checks").wait_for(timeout=120_000)
    for label in ("Also compare instructions (ROUGE-L above 0.7)", "Execute Python solutions"):
        box = page.get_by_text(label, exact=True)
        box.click()
        assert box.is_visible() and not cut_off(box), f"the label {label!r} is cut off"
    page.get_by_role("button", name="Run checks").click()
    wait_or_fail(page, page.get_by_text("Decontamination:"), 180_000)
    wait_for_app(page, timeout=180_000)
    page.get_by_text("Automatic exclusions:").click()
    table = page.locator("[data-testid='stTable']").filter(has_text="pre-filter").first
    table.wait_for()
    assert "instruction_too_long" in table.inner_text()
    confirm = page.get_by_role("button", name="Leave them out of the export")
    if confirm.count():                       # an accepted example a check flags: listed, then confirmed
        full_page_shot(page, "first-hour-8-dataset-confirm")
        confirm.click()
        wait_for_app(page, timeout=120_000)
    folder = page.get_by_placeholder("/path/to/my-dataset")
    folder.fill(str(out))
    folder.press("Tab")
    wait_for_app(page, timeout=120_000)
    page.get_by_role("button", name="Export to folder").click()
    done = page.locator("[data-testid='stAlertContentSuccess']").filter(has_text="examples to")
    wait_or_fail(page, "[data-testid='stAlertContentSuccess']", 60_000)
    wrote = done.first.inner_text()
    no_exception(page)
    full_page_shot(page, "first-hour-9-dataset-exported")
    return wrote


# --------------------------------------------------------------------------- the test

def test_first_hour_every_page_shows_the_true_state(tmp_path, page, app_server):
    db, out = tmp_path / "first-hour.duckdb", tmp_path / "export"
    valve = Valve(allowed=4)       # the first job answers 4 calls, then holds until the test lets more through
    with FakeOpenAIServer(valve.wrap(first_hour_responder), latency_s=1.0) as llm:
        srv = app_server(db, env={"SHOAL_DEMO_SOURCE": DEMO_MODULES, "USER": REVIEWER, "HF_HUB_OFFLINE": "1",
                                  "SHOAL_GENERATOR_BASE_URL": llm.base_url, "SHOAL_GENERATOR_MODEL": "fake-model",
                                  "SHOAL_GENERATOR_TIMEOUT": "1800"})   # a held call is not a timeout
        corpus_step(page, srv.url)
        screenshot(page, "first-hour-1-corpus")
        map_step(page, srv.url)
        corpus_next_step(page, srv.url)
        screenshot(page, "first-hour-2-corpus-next-step")
        first = start_first_job(page, srv.url)
        second_tab_follows_the_job(page, srv.url, valve)
        second = reload_mid_job_and_queue(page, srv.url, first)
        home_shows_running(page, srv.url, first, second)
        valve.open()
        wait_until_done(page, srv.url, second)
        gid = review_prefiltered(page, srv.url)
        wrote = check_and_export(page, srv.url, out)
        srv.stop()
        max_in_flight = llm.max_in_flight

    assert max_in_flight <= 2, "one job at a time on the server, at the concurrency the form shows"
    rows = pd.read_json(out / "train.jsonl", lines=True)
    assert wrote.startswith(f"Wrote {len(rows)} examples")
    flagged = {int(p["generation_id"]): p["prefilter_failed"] for p in rows["provenance"]}
    assert flagged.get(gid) and "instruction_too_long" in flagged[gid][0]
    assert all(v is None for g, v in flagged.items() if g != gid)
    with open_store(db) as s:
        jobs = {r["id"]: r for r in s.rows("SELECT id, name, status, n_items, params FROM jobs")}
        assert set(jobs) == {first, second}
        assert jobs[second]["n_items"] == SECOND_LIMIT and jobs[second]["name"] == f"Selection: {SELECTION}"
        assert all(j["status"] == "done" for j in jobs.values())
        assert json.loads(jobs[first]["params"])["concurrency"] == 2
        assert {r[0] for r in s.execute("SELECT DISTINCT generator_model FROM generations").fetchall()} == {"fake-model"}
        # the second job's first item started after the first job's last one ended
        end_first = s.scalar("SELECT max(created_at) FROM generations WHERE job_id = ?", [first])
        start_second = s.scalar("SELECT min(created_at) FROM generations WHERE job_id = ?", [second])
        assert start_second is None or start_second >= end_first
