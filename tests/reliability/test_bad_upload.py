"""The bad-input corpus through the Corpus page's upload path in Chromium: every bad file or record is a
counted error with its location on the page, the good records around them are ingested, the app survives."""
from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

from core.store import open_store
from tests.support.browser import screenshot, wait_for_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# (location, reason) the page must list for each upload; locations are relative to the uploaded folder.
DATA_ZIP_EXPECTED = {("binary.jsonl", "binary_file"), ("empty.jsonl", "empty_file"),
                     ("invalid_utf8.jsonl:2", "invalid_utf8"), ("malformed.jsonl:1", "malformed_json"),
                     ("malformed.jsonl:3", "not_an_object"), ("malformed.jsonl:4", "malformed_json"),
                     ("fields.jsonl:1", "missing_field"), ("fields.jsonl:2", "wrong_type"),
                     ("fields.jsonl:3", "wrong_type"), ("fields.jsonl:4", "unsupported_language"),
                     ("huge_line.jsonl:2", "line_too_long")}
REPO_ZIP_EXPECTED = {("src/broken.py:6", "parse_error"), ("src/latin1.py:1", "invalid_utf8"),
                     ("src/compiled.py", "binary_file"), ("src/payroll.cob", "unsupported_language")}
GOOD_CSN = {"shout_1", "shout_2", "shout_3", "shout_4", "shout_8", "shout_9", "shout_10"}
GOOD_SOURCE = {"intact_before_error", "intact_after_error", "polygon_area"}


def zip_folder(root: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(root.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(root).as_posix())
    return buf.getvalue()


GRID_ROWS_JS = """(el) => [...el.querySelectorAll('tr')].map(tr => [...tr.querySelectorAll('td,th')]
    .map(c => c.innerText.trim()))"""


def grid_rows(grid) -> list[list[str]]:
    """Every row of an st.dataframe as cell texts. The grid draws on a canvas and keeps an accessible
    table of the cells in view in the DOM, so scroll through it and collect what each view shows."""
    grid.scroll_into_view_if_needed()
    scroller = grid.locator(".dvn-scroller").first
    seen: dict[tuple, None] = {}
    top = 0
    while True:
        scroller.evaluate("(el, y) => { el.scrollTop = y; }", top)
        grid.page.wait_for_timeout(250)
        for row in grid.evaluate(GRID_ROWS_JS):
            seen.setdefault(tuple(row), None)
        height, view = scroller.evaluate("el => [el.scrollHeight, el.clientHeight]")
        if top + view >= height:
            return [list(r) for r in seen]
        top += max(40, view - 80)


BUTTON_ENABLED_JS = """want => { const b = [...document.querySelectorAll('button')]
    .find(b => b.innerText.includes('Ingest upload')); return b && b.disabled === !want; }"""


def upload_and_ingest(page, name: str, data: bytes, mime: str) -> None:
    """Upload one file with the Corpus page's uploader, ingest it, wait for its result, remove it again
    (so the disabled button tells when the next upload has reached the app)."""
    if not page.get_by_role("tab", name="Upload a file").is_visible():
        page.get_by_text("Add a source").click()
    page.get_by_role("tab", name="Upload a file").click()
    page.wait_for_function(BUTTON_ENABLED_JS, arg=False)
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(
        files=[{"name": name, "mimeType": mime, "buffer": data}])
    page.locator("[data-testid='stFileChipName']").filter(has_text=name).wait_for()
    page.wait_for_function(BUTTON_ENABLED_JS, arg=True)
    wait_for_app(page)
    page.get_by_role("button", name="Ingest upload").click()
    try:
        page.locator("[data-testid='stAlert']").filter(has_text="Ingest #").filter(has_text=name.split(".")[0]) \
            .wait_for(timeout=60_000)
    except Exception:
        screenshot(page, f"reliability_bad_upload_failed_{name}")
        raise
    wait_for_app(page)
    if not page.get_by_role("tab", name="Upload a file").is_visible():
        page.get_by_text("Add a source").click()
        page.get_by_role("tab", name="Upload a file").click()
    page.get_by_role("button", name=f"Remove {name}").click()
    page.wait_for_function(BUTTON_ENABLED_JS, arg=False)
    wait_for_app(page)


@pytest.fixture
def wide_page(browser):
    """Wide enough that every column of the rejections table is drawn (and so in the DOM)."""
    ctx = browser.new_context(viewport={"width": 1900, "height": 1100})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


@pytest.fixture
def short_dir():
    """The uploads land next to the database; a short folder keeps the `source` column narrow."""
    d = Path(tempfile.mkdtemp(prefix="shoal-up-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_bad_input_uploads_are_counted_with_locations_and_good_records_kept(short_dir, wide_page, app_server,
                                                                          bad_data, multilang_repo):
    page = wide_page
    db = short_dir / "upload.duckdb"
    srv = app_server(db)
    page.goto(srv.url + "/Corpus")
    wait_for_app(page)
    page.get_by_text("No code yet").wait_for()

    upload_and_ingest(page, "bad_data.zip", zip_folder(bad_data), "application/zip")
    upload_and_ingest(page, "repo.zip", zip_folder(multilang_repo), "application/zip")
    # a plain (not zipped) upload goes through the single-file path
    upload_and_ingest(page, "shard.jsonl.gz", (bad_data / "truncated.jsonl.gz").read_bytes(), "application/gzip")
    summary = page.locator("[data-testid='stAlert']").filter(has_text="Ingest #3").inner_text()
    assert "1 errors" in summary, summary          # the truncated gzip, counted; the page lived through it all

    page.get_by_text("Rejected records").first.wait_for()
    wait_for_app(page)
    grids = page.locator("[data-testid='stDataFrame']")
    by_header = {}
    for i in range(grids.count()):
        if grids.nth(i).locator(".dvn-scroller").count():
            rows = grid_rows(grids.nth(i))
            by_header[tuple(rows[0])] = rows[1:]
    counts = {(k, r): int(n) for k, r, n in by_header[("kind", "reason", "n")]}
    shown = next(rows for head, rows in by_header.items() if head[:4] == ("kind", "reason", "source", "location"))
    located = {(Path(src).name, loc, reason) for kind, reason, src, loc, *_ in shown}
    for loc, reason in DATA_ZIP_EXPECTED:
        assert ("bad_data", loc, reason) in located, (loc, reason)
    for loc, reason in REPO_ZIP_EXPECTED:
        assert ("repo", loc, reason) in located, (loc, reason)
    assert any(s == "bad_data" and l.startswith("truncated.jsonl.gz:") and r == "truncated_gzip"
               for s, l, r in located)
    assert any(s == "shard.jsonl.gz" and l.startswith("shard.jsonl.gz:") and r == "truncated_gzip"
               for s, l, r in located)
    assert all(loc and reason for _, reason, _, loc, *_ in shown)
    page.get_by_text("Rejected records").first.scroll_into_view_if_needed()
    screenshot(page, "reliability_bad_upload")

    # The app survives: a fresh load of the page shows the same numbers.
    page.reload()
    wait_for_app(page)
    page.locator("[data-testid='stMetric']").filter(has_text="Rejected").wait_for()
    n_snippets = int(page.locator("[data-testid='stMetric']").filter(has_text="Snippets")
                     .locator("[data-testid='stMetricValue']").inner_text().replace(",", ""))
    srv.stop()

    with open_store(db, read_only=True) as s:
        assert n_snippets == int(s.scalar("SELECT count(*) FROM snippets"))
        db_counts = {(r["kind"], r["reason"]): int(r["n"]) for r in
                     s.rows("SELECT kind, reason, count(*) AS n FROM ingest_errors GROUP BY ALL")}
        assert counts == db_counts                   # every rejection is counted on the page
        assert len(shown) == sum(db_counts.values())  # and listed with its location
        names = set(s.df("SELECT func_name FROM snippets").func_name)
        assert GOOD_CSN | GOOD_SOURCE <= names       # the good records around the bad ones are in
        survivors = {n for n in names if n.startswith("shout_") and 20 <= int(n.split("_")[1]) < 60}
        assert 5 <= len(survivors) < 40              # what came before the truncation point
        assert s.scalar("SELECT count(*) FROM snippets WHERE n_chars > 1000000") == 0
