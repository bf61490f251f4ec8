"""Walk the app as people do (issue 20), in headless Chromium, on one small prepared database and one
app server for the whole module:

* every page from every other page and back (an Eulerian circuit of the 42 ordered page pairs, by the
  sidebar menu, in one browser session), with the Review filter, the example shown and the Corpus
  search set first and checked each time the walk comes back to them;
* reloads mid-action (a reject note half typed, a budget half typed, every page);
* two tabs of the same reviewer moving between pages;
* Enter in every text and number field of every page: no stray selection, map build or check run;
* the selection form's duplicate name: one clear message, never a traceback beside a success;
* untrusted text (a snippet, a generated field, a judge reason, a cluster name) planted with
  Markdown, an image pointing at a local beacon and an HTML tag: shown literally, and the beacon
  gets no request.

No page may ever show an exception (`[data-testid="stException"]`). Screenshots of the Review revisit
and the selection form go to test-artifacts/walk-*.png (and to $SHOAL_SHOTS when set).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from core.store import open_store
from core.tasks import get_task
from tests.support.browser import choose, full_page_shot, no_exception, wait_for_app
from tests.support.fake_generations import fill_fake
from tests.support.maps import add_vectors
from tests.support.streamlit_server import StreamlitServer

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

# the pages this test acts on; the walk itself visits every page the menu lists ("Home" is "/")
KNOWN = ("Home", "Corpus", "Map", "Generate", "Review", "Dataset", "Team")
QUERY = "parse"                          # the Corpus search the walk sets and expects back
SELECTION = "walk-existing"              # a selection the database starts with
SHOTS = os.environ.get("SHOAL_SHOTS")


def circuit(nodes: list[str], start: str) -> list[str]:
    """An Eulerian circuit of the complete directed graph on `nodes` from `start`: every ordered pair
    (a, b) is one step a -> b, exactly once (Hierholzer)."""
    out = {a: [b for b in nodes if b != a] for a in nodes}
    stack, path = [start], []
    while stack:
        if out[stack[-1]]:
            stack.append(out[stack[-1]].pop(0))
        else:
            path.append(stack.pop())
    return path[::-1]


# --------------------------------------------------------------------------- the module's app

class Beacon:
    """A loopback HTTP server that counts the requests a page makes to it."""

    def __init__(self):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(204)
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def planted(self) -> str:
        """Markdown, a Markdown image and an HTML image, all pointing at the beacon."""
        return (f"Fraction.__reduce__ **bold** ![x]({self.url}/beacon-md) "
                f"<img src=\"{self.url}/beacon-html\"> end")

    def close(self) -> None:
        self.server.shutdown()


def prepare(db: Path, beacon: Beacon) -> dict:
    """40 examples with judgments, 24 snippets with vectors, a map and a selection; untrusted text
    planted in one judged example (its snippet, a generated field, a judge reason, its cluster's name)."""
    text = beacon.planted()
    with open_store(db) as s:
        info = fill_fake(s, 40, seed=5, n_snippets=24)
        gid = int(s.scalar("SELECT generation_id FROM judgments ORDER BY generation_id LIMIT 1"))
        sid = s.scalar("SELECT snippet_id FROM generations WHERE id = ?", [gid])
        s.execute("UPDATE snippets SET func_name = 'Fraction.__reduce__', path = 'fractions/__init__.py', "
                  "code = code || ? WHERE id = ?", ["\n# " + text + "\n", sid])
        fields = json.loads(s.scalar("SELECT fields FROM generations WHERE id = ?", [gid]))
        fields["instruction"] = "Explain " + text
        s.execute("UPDATE generations SET fields = ? WHERE id = ?", [json.dumps(fields), gid])
        rules = json.loads(s.scalar("SELECT rules FROM judgments WHERE generation_id = ?", [gid]))
        rules[0].update(answer="no", reason=text)
        s.execute("UPDATE judgments SET rules = ?, overall = false WHERE generation_id = ?", [json.dumps(rules), gid])
        s.execute("UPDATE clusters SET terms = ?", [json.dumps([{"term": "x", "score": 1.0}])])  # as maps.py writes
        for pid, task, content in s.execute("SELECT id, task, content FROM prompt_versions").fetchall():
            full = {**get_task(task).default_content(), "rules": json.loads(content)["rules"]}   # templates too
            s.execute("UPDATE prompt_versions SET content = ? WHERE id = ?", [json.dumps(full), pid])
        s.execute("UPDATE clusters SET label = '__init__ **bold** <b>x</b>' WHERE map_id = ? AND cluster = "
                  "(SELECT cluster FROM map_points WHERE map_id = ? AND snippet_id = ?)",
                  [info["map_id"], info["map_id"], sid])
        s.execute("UPDATE selections SET name = ?, model = 'fake' WHERE id = ?", [SELECTION, info["selection_id"]])
        snips = s.df("SELECT id, func_name, docstring, code FROM snippets ORDER BY id")
        add_vectors(s, snips, np.random.default_rng(5).normal(size=(len(snips), 16)).astype("float32"), key="fake")
        s.checkpoint()
    return {"gid": gid, **info}


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    """(server, beacon, prepared info): one app for the whole module."""
    tmp = tmp_path_factory.mktemp("walk")
    beacon = Beacon()
    info = prepare(tmp / "walk.duckdb", beacon)
    srv = StreamlitServer(tmp / "walk.duckdb", env={"USER": "walker"}).start()
    try:
        yield srv, beacon, info
    finally:
        srv.stop()
        beacon.close()


@pytest.fixture
def tab(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


# --------------------------------------------------------------------------- helpers

ARRIVED = """(path) => (location.pathname === path && !!document.querySelector('h1'))
  || !!document.querySelector('[data-testid="stException"]')"""
SHOWN_GID = """() => { const h = [...document.querySelectorAll('h3')].map(e => e.innerText)
  .find(t => t.includes('Example #')); const m = h && h.match(/Example #(\\d+)/); return m ? Number(m[1]) : null; }"""


def shot(page, name: str) -> None:
    path = full_page_shot(page, f"walk-{name}")
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(SHOTS) / path.name)


def path_of(name: str) -> str:
    return "/" if name == "Home" else "/" + name


def menu(page) -> list[str]:
    """The pages the sidebar menu lists, by name ("Home" for "/")."""
    paths = page.evaluate("() => [...document.querySelectorAll('[data-testid=stSidebarNav] a')]"
                          ".map(a => new URL(a.href).pathname)")
    return ["Home" if p == "/" else p.strip("/") for p in paths]


def arrive(page, name: str, where: str = "") -> None:
    """Wait for page `name` (its title, or an exception) and the app to settle; no exception allowed."""
    page.wait_for_function(ARRIVED, arg=path_of(name), timeout=180_000)    # a page's first run imports a lot
    wait_for_app(page, timeout=180_000, settle_ms=120)
    if page.locator("[data-testid='stException']").count():
        shot(page, f"exception-{name}")
    try:
        no_exception(page)
    except AssertionError as exc:
        raise AssertionError(f"{name} ({where}) shows an exception: {exc}") from None


def go(page, name: str, where: str = "") -> None:
    """To page `name` through the sidebar menu (the same browser session, as a person moves)."""
    path = path_of(name)
    page.evaluate("(path) => [...document.querySelectorAll('[data-testid=stSidebarNav] a')]"
                  ".find(a => new URL(a.href).pathname === path).click()", path)
    arrive(page, name, where)


def open_url(page, url: str, name: str) -> None:
    page.goto(url)
    arrive(page, name, url)


def shown_gid(page) -> int | None:
    return page.evaluate(SHOWN_GID)


def choice(page, label: str) -> str:
    """What the selectbox labelled `label` shows (its text after the label)."""
    return page.locator("[data-testid='stSelectbox']").filter(has_text=label).first.locator("input").input_value()


def check_review(page, gid: int, where: str) -> None:
    assert choice(page, "Judge verdict") == "failed", f"the Review filter was lost ({where})"
    page.wait_for_function(f"() => ({SHOWN_GID})() !== null")
    assert shown_gid(page) == gid, f"the Review page moved off example #{gid} ({where})"


def check_corpus(page, where: str) -> None:
    box = page.get_by_label("Search name, path, docstring or code")
    assert box.input_value() == QUERY, f"the Corpus search was lost ({where})"


# --------------------------------------------------------------------------- the walk

def test_every_page_from_every_other_page_and_back(walk, tab):
    srv, _, _ = walk
    page = tab
    open_url(page, srv.url + "/Review", "Review")
    choose(page, "Judge verdict", "failed")                       # a filter, and the example it lands on
    page.wait_for_function(f"() => ({SHOWN_GID})() !== null")
    gid = shown_gid(page)
    go(page, "Map", "leaving Review")
    go(page, "Review", "back from Map")                           # the revisit that used to crash
    shot(page, "review-revisit")
    check_review(page, gid, "back from Map")
    go(page, "Corpus")
    box = page.get_by_label("Search name, path, docstring or code")
    box.fill(QUERY)
    box.press("Tab")
    wait_for_app(page)
    pages = menu(page)
    assert set(KNOWN) <= set(pages), pages
    steps = circuit(pages, "Corpus")
    assert len(steps) == len(pages) * (len(pages) - 1) + 1          # every ordered pair, once
    for before, name in zip(steps, steps[1:]):
        go(page, name, f"from {before}")
        if name == "Review":
            check_review(page, gid, f"from {before}")
        elif name == "Corpus":
            check_corpus(page, f"from {before}")


def test_reloads_mid_action(walk, tab):
    srv, _, info = walk
    page = tab
    gid = info["gid"]
    open_url(page, f"{srv.url}/Review?g={gid}", "Review")
    page.wait_for_selector("button:has-text('Accept')", state="visible")
    page.locator("button", has_text="Reject…").first.click()      # the reject form, a note half typed
    page.wait_for_selector("input[aria-label='Reject note']")
    page.locator("input[aria-label='Reject note']").click()
    page.keyboard.type("half a note")
    page.reload()
    arrive(page, "Review", "reload with the reject form open")
    page.wait_for_function(f"() => ({SHOWN_GID})() !== null")
    assert shown_gid(page) == gid                                 # ?g= keeps the place
    go(page, "Map")
    page.get_by_label("Budget", exact=True).fill("7")             # typed, not submitted
    page.reload()
    arrive(page, "Map", "reload with a budget half typed")
    for name in ("Generate", "Dataset"):                          # the two with the most state, reloaded
        go(page, name)
        page.reload()
        arrive(page, name, "reload")


def test_two_tabs_of_one_reviewer(walk, browser):
    srv, _, info = walk
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        a, b = ctx.new_page(), ctx.new_page()
        open_url(a, f"{srv.url}/Review?g={info['gid']}", "Review")
        open_url(b, srv.url + "/Map", "Map")
        go(b, "Review", "second tab")                             # a second session of the same reviewer
        go(a, "Dataset", "first tab")
        before = shown_gid(b)
        b.get_by_role("button", name="Next").click()
        b.wait_for_function(f"() => {{ const g = ({SHOWN_GID})(); return g !== null && g !== {before}; }}")
        wait_for_app(b)
        moved = shown_gid(b)
        assert moved is not None and moved != before, "Next in the second tab did not move it on"
        go(a, "Review", "first tab, after the second moved on")
        go(b, "Team", "second tab")
        no_exception(a)
        no_exception(b)
    finally:
        ctx.close()


TEXT_FIELDS = ("input[type='text']:not([role='combobox']):not([aria-autocomplete]), input[type='number'], "
               "input[type='password']")


def press_enter_everywhere(page, name: str, done: set[str] | None = None) -> list[str]:
    """Enter in every visible text and number field of the page (and sidebar) not in `done` (the
    sidebar's fields, already tried on another page); returns their labels and adds them to `done`."""
    done = set() if done is None else done
    labels = page.evaluate(
        "(sel) => [...document.querySelectorAll(sel)].filter(e => e.offsetParent !== null && !e.disabled)"
        ".map(e => e.getAttribute('aria-label')).filter(Boolean)", f"[data-testid='stAppViewContainer'] :is({TEXT_FIELDS})")
    seen = []
    for label in dict.fromkeys(labels):
        if label == "Reject note" or label in done:     # Enter in the note is the documented way to reject
            continue
        field = page.locator(f"[data-testid='stAppViewContainer'] input[aria-label={json.dumps(label)}]").first
        if not field.count() or not field.is_visible():
            continue
        field.click()
        field.press("Enter")
        wait_for_app(page)
        arrive(page, name, f"Enter in {label!r}")
        seen.append(label)
        done.add(label)
    return seen


def test_enter_in_every_field_submits_nothing(walk, tab):
    srv, _, _ = walk
    page = tab
    open_url(page, srv.url + "/Map", "Map")
    page.get_by_label("Budget", exact=True).wait_for()             # the selection form is drawn
    page.get_by_text("Embed and build a map").click()              # the build form's fields, shown
    wait_for_app(page)
    done: set[str] = set()
    labels = press_enter_everywhere(page, "Map", done)
    assert {"Budget", "Name", "Embedding model", "Batch size"} <= set(labels), labels
    assert page.get_by_text("Saved selection").count() == 0, "Enter submitted a selection"
    assert page.locator("[data-testid='stProgress']").count() == 0, "Enter started a map build"
    for name in [n for n in menu(page) if n != "Map"]:
        go(page, name)
        press_enter_everywhere(page, name, done)
    go(page, "Dataset")
    assert page.get_by_text("No checks run yet").count() == 1, "Enter started the checks"


def test_selection_form_says_a_taken_name_once(walk, tab):
    srv, _, _ = walk
    page = tab
    open_url(page, srv.url + "/Map", "Map")

    def submit(name: str, budget: int = 5) -> None:
        box = page.get_by_label("Budget", exact=True)
        box.fill(str(budget))
        box.press("Tab")
        field = page.get_by_label("Name", exact=True)
        field.fill(name)
        field.press("Tab")
        page.get_by_role("button", name="Select", exact=True).click()
        wait_for_app(page, timeout=90_000)
        no_exception(page)

    errors = page.locator("[data-testid='stAlertContentError']")
    successes = page.locator("[data-testid='stAlertContentSuccess']")
    submit(SELECTION)                                              # taken from the start
    assert errors.count() == 1 and "already exists" in errors.first.inner_text(), errors.all_inner_texts()
    assert successes.count() == 0
    submit("walk pick")
    page.get_by_text("Saved selection walk pick").wait_for(timeout=90_000)
    assert errors.count() == 0
    fresh = page.get_by_label("Name", exact=True).input_value()
    submit("walk pick")                                            # the same name again
    shot(page, "selection-form-taken-name")
    assert fresh != "walk pick", "the name field still holds the saved selection's name"
    assert errors.count() == 1 and "already exists" in errors.first.inner_text(), errors.all_inner_texts()
    assert successes.count() == 0, "an old success beside the new error"
    assert "Duplicate key" not in page.locator("body").inner_text()


def test_untrusted_text_is_shown_as_text(walk, tab):
    srv, beacon, info = walk
    page = tab
    page.goto(srv.url + "/")
    page.evaluate("(u) => fetch(u + '/control').catch(() => null)", beacon.url)     # the beacon does count
    page.wait_for_function("() => true")
    assert "/control" in beacon.hits
    open_url(page, f"{srv.url}/Review?g={info['gid']}", "Review")
    page.wait_for_selector("[data-testid='stTable']")
    body = page.locator("[data-testid='stMain']").inner_text()
    for literal in ("Fraction.__reduce__", "fractions/__init__.py", "**bold**", f"![x]({beacon.url}/beacon-md)",
                    f"<img src=\"{beacon.url}/beacon-html\">", "__init__ **bold** <b>x</b>"):
        assert literal in body, f"{literal!r} is not shown as written"
    rules = page.locator("[data-testid='stTable']").first
    assert "Fraction.__reduce__ **bold**" in rules.inner_text()
    assert rules.locator("strong, em, img").count() == 0, "a judge reason was rendered as Markdown"
    links = rules.evaluate("(e) => [...e.querySelectorAll('a')].map(a => [a.innerText, a.getAttribute('href')])")
    assert all(text == href for text, href in links), links    # at most a bare URL made clickable, as written
    assert page.locator(f"[data-testid='stMain'] img[src^='{beacon.url}']").count() == 0
    shot(page, "untrusted-text")
    go(page, "Map")                                                # the planted cluster name in the legend
    page.frame_locator("iframe[title*='shoal_map']").locator("body[data-points]").wait_for(timeout=60_000)
    frame = page.frame_locator("iframe[title*='shoal_map']")
    names = frame.locator(".legendtext").evaluate_all("(ts) => ts.map(t => t.textContent)")
    assert any("__init__ **bold** <b>x</b>" in n for n in names), names      # a cluster name, as written
    page.wait_for_timeout(1000)
    assert [h for h in beacon.hits if h != "/control"] == [], f"the page fetched {beacon.hits}"
