"""A signed-in reviewer, in Chromium against the real app (a real OIDC flow against a local provider
on loopback), tries what the issue's attacker did: ingest a server path, build a map, make a
selection, start a job, export, and, with `?g=` in the URL, turn another reviewer's accept into a
reject. Every route is closed with a clear message; the attempts that reach the server are in the
audit log; the database shows nothing changed.
"""
from __future__ import annotations

import json
import re

import pytest

from core import review as rv
from core.store import open_store
from tests.support.browser import goto, main_text, new_page, screenshot, wait_for_app, wait_or_fail
from tests.support.fake_generations import fill_fake
from tests.support.streamlit_server import StreamlitServer, free_port
from tests.support.team_browser import OWNER, sign_in, sign_in_home

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ALICE, BOB = "alice@example.com", "bob@example.com"
FUNC = ("def rectangle_area(width, height):\n    \"\"\"Area of a width by height rectangle.\"\"\"\n"
        "    if width < 0 or height < 0:\n        raise ValueError('negative side')\n    return width * height\n")


def counts(db) -> dict[str, int]:
    with open_store(db) as s:
        return {t: s.scalar(f"SELECT count(*) FROM {t}")
                for t in ("ingests", "snippets", "maps", "selections", "jobs", "exports", "background_tasks")}


@pytest.fixture
def guarded_app(tmp_path, oidc):
    """Alice and Bob are reviewers (named in the secrets file, as the owner is); each has half of the
    examples; Bob has accepted one of his. The data root holds a folder Alice could name."""
    data = tmp_path / "data" / "repo"
    data.mkdir(parents=True)
    (data / "area.py").write_text(FUNC)
    db = tmp_path / "roles.duckdb"
    with open_store(db) as s:
        fill_fake(s, 6, seed=13)
        rv.assign_examples(s, [ALICE, BOB], per_example=1, overlap_share=1.0, actor=OWNER, actor_role="owner")
        bobs = int(s.scalar("SELECT min(generation_id) FROM assignments WHERE reviewer = ?", [BOB]))
        rv.decide(s, bobs, "accepted", reviewer=BOB, expected_version=rv.version_for(s, bobs, BOB))
        s.checkpoint()
    port = free_port()
    home = sign_in_home(tmp_path, port, oidc, f'[shoal.roles]\n"{ALICE}" = "reviewer"\n"{BOB}" = "reviewer"\n')
    before = counts(db)
    srv = StreamlitServer(db, port=port, env={"HOME": str(home), "AUTHLIB_INSECURE_TRANSPORT": "1",
                                              "SHOAL_DATA_ROOTS": str(tmp_path / "data")}).start()
    yield srv, db, bobs, data, before
    srv.stop()


def test_a_signed_in_reviewer_cannot_ingest_map_select_generate_export_or_overrule(browser, guarded_app):
    srv, db, bobs, data, before = guarded_app
    url = srv.url
    ctx, alice = new_page(browser)
    alice.set_default_timeout(90_000)             # a busy CI machine renders slowly
    sign_in(alice, url, ALICE)

    # ---- Corpus: the sources are there to read, adding one is closed, and says why
    goto(alice, url + "/Corpus")
    alice.get_by_text("Add a source").click()
    alice.get_by_role("tab", name="Path on the server").click()
    alice.wait_for_selector("text=As a reviewer you cannot add to the corpus")
    alice.get_by_label("File or folder on the server").fill(str(data))
    alice.get_by_label("File or folder on the server").press("Enter")
    wait_for_app(alice)
    assert alice.get_by_role("button", name="Ingest", exact=True).is_disabled()
    alice.get_by_role("tab", name="Demo corpus").click()
    assert alice.get_by_role("button", name="Load demo corpus").is_disabled()
    screenshot(alice, "roles_reviewer_corpus")

    # ---- Map: no build, no selection
    goto(alice, url + "/Map")
    wait_or_fail(alice, "text=As a reviewer you cannot make selections", 90_000, "the Map page's select lock")
    assert alice.get_by_role("button", name="Select", exact=True).is_disabled()
    alice.get_by_text("Embed and build a map").click()
    alice.wait_for_selector("text=As a reviewer you cannot build maps")
    assert alice.get_by_role("button", name="Embed and build map").is_disabled()

    # ---- Generate and Dataset typed into the URL: the page says why, nothing else
    goto(alice, url + "/Generate")
    alice.wait_for_selector("text=As a reviewer you cannot use the Generate page")
    assert alice.get_by_role("button", name="Start").count() == 0
    goto(alice, url + "/Dataset")
    alice.wait_for_selector("text=As a reviewer you cannot export the dataset")
    assert alice.locator("[data-testid='stDownloadButton']").count() == 0

    # ---- ?g= : Bob's accepted example opened by URL -> refused by core before it is shown, said plainly
    goto(alice, url + f"/Review?g={bobs}")
    alice.wait_for_selector(f"text=Example #{bobs} is not in your review queue")
    wait_for_app(alice)
    assert "as a reviewer you decide only the examples assigned to you" in main_text(alice)
    shown = alice.locator("h3").filter(has_text=re.compile(rf"Example #{bobs}\b"))
    assert shown.count() == 0                                        # not drawn, so not decidable
    screenshot(alice, "roles_reviewer_overrule_refused")
    ctx.close()
    srv.stop()

    # ---- nothing changed, and the attempts that reached the server are audited under her name
    assert counts(db) == before
    with open_store(db) as s:
        review = rv.get_review(s, bobs)
        assert (review["verdict"], review["reviewer"]) == ("accepted", BOB)
        refused = {(r[0], r[1]) for r in s.execute(
            "SELECT action, entity_id FROM audit_log WHERE actor = ? AND action LIKE '%.refused'", [ALICE]).fetchall()}
        assert ("review.refused", str(bobs)) in refused
        assert ("generate.refused", "page") in refused and ("export.refused", "page") in refused
        why = json.loads(s.scalar("SELECT after FROM audit_log WHERE actor = ? AND action = 'review.refused'",
                                  [ALICE]))
        assert why["role"] == "reviewer" and "not in your review queue" in why["reason"]
        assert s.scalar("SELECT count(*) FROM audit_log WHERE actor = ? AND action LIKE '%.allowed'", [ALICE]) == 0
