"""A team in real browsers, signed in through a real OIDC flow against a local provider on loopback.

The owner (named in the secrets file) adds two reviewers on the Team page and gives half of the
examples an overlap of two; the reviewers sign in in their own browser contexts and review their
queues at the same time (blind: the second sees that a verdict is hidden until they give theirs);
the overlap examples end agreed or in conflict; the owner resolves the conflict; the audit log and
the export name the right people. An anonymous browser sees only the sign-in page; a reviewer
cannot open the Generate page's controls or export.
"""
from __future__ import annotations

import json

import pytest

from core.dataset.export import export_dataset
from core.store import open_store
from tests.support.browser import goto, main_text, new_page, screenshot, wait_for_app
from tests.support.fake_generations import fill_fake
from tests.support.streamlit_server import StreamlitServer, free_port
from tests.support.team_browser import OWNER, sign_in, sign_in_home

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ALICE, BOB = "alice@example.com", "bob@example.com"
SHOWN_GID_JS = """() => {
  const h = [...document.querySelectorAll('h3')].map(e => e.innerText).find(t => t.includes('Example #'));
  const m = h && h.match(/Example #(\\d+)/);
  return m ? Number(m[1]) : null;
}"""


@pytest.fixture
def team_app(tmp_path, oidc):
    db = tmp_path / "team.duckdb"
    with open_store(db) as s:
        fill_fake(s, 6, seed=13)
        s.checkpoint()
    port = free_port()
    home = sign_in_home(tmp_path, port, oidc)
    srv = StreamlitServer(db, env={"HOME": str(home), "AUTHLIB_INSECURE_TRANSPORT": "1"}, port=port).start()
    yield srv, db
    srv.stop()


def shown_gid(page) -> int | None:
    return page.evaluate(SHOWN_GID_JS)


def open_queue(page, url: str) -> None:
    goto(page, url + "/Review")
    page.wait_for_function(f"() => ({SHOWN_GID_JS})() !== null || document.body.innerText.includes('Nothing to review')")
    wait_for_app(page)


def mode(page, name: str):
    """A button of the Review page's view switch (Review / Bulk / Agreement / Conflicts)."""
    return page.locator("[data-testid='stButtonGroup']").get_by_text(name, exact=True)


def step(page, reject_overlap: bool) -> tuple[int, str, bool] | None:
    """Decide the example on screen: accept, or (reject_overlap and it is an overlap example whose
    other verdict is hidden) reject with a note. Returns (id, verdict, blind) or None at the end."""
    gid = shown_gid(page)
    if gid is None:
        return None
    page.wait_for_selector("button:has-text('Accept')", state="visible")
    text = main_text(page)
    blind = "hidden until you give yours" in text
    if reject_overlap and blind:
        screenshot(page, "team_review_blind")
        page.keyboard.press("x")
        page.wait_for_function("() => document.activeElement && "
                               "document.activeElement.getAttribute('aria-label') === 'Reject note'")
        page.keyboard.type("the solution ignores the limit")
        page.keyboard.press("Enter")
        verdict = "rejected"
    else:
        page.keyboard.press("a")
        verdict = "accepted"
    page.wait_for_function(f"() => ({SHOWN_GID_JS})() !== {gid}")
    wait_for_app(page)
    return gid, verdict, blind


def test_team_signs_in_reviews_with_overlap_and_adjudicates(browser, team_app):
    srv, db = team_app
    url = srv.url

    # ---- anonymous: only the sign-in page, whatever the URL
    anon_ctx, anon = new_page(browser)
    for path in ("/Review", "/Dataset", "/Team"):
        goto(anon, url + path)
        anon.get_by_role("button", name="Sign in").wait_for()
        wait_for_app(anon)
        text = anon.inner_text("body")
        assert "Example #" not in text and "Database:" not in text and "Corpus" not in text
        assert anon.locator("[data-testid='stSidebarNav']").count() == 0
    screenshot(anon, "team_anonymous_sign_in")
    anon_ctx.close()

    # ---- the owner adds two reviewers and assigns with overlap on the Team page
    own_ctx, owner = new_page(browser)
    sign_in(owner, url, OWNER)
    goto(owner, url + "/Team")
    for email in (ALICE, BOB):
        owner.get_by_label("Email (or OIDC subject)").fill(email)
        owner.get_by_role("button", name="Add / change").click()
        owner.wait_for_selector(f"[data-testid='stAlert']:has-text('{email} is now reviewer')")
        wait_for_app(owner)
    goto(owner, url + "/Team")                                    # a fresh session: reviewers preselected
    per = owner.get_by_role("spinbutton", name="Reviewers per example")
    per.fill("2")
    per.press("Enter")
    wait_for_app(owner)
    slider = owner.get_by_role("slider")
    slider.focus()
    for _ in range(10):                                           # 100 % -> 50 %
        slider.press("ArrowLeft")
    wait_for_app(owner)
    owner.get_by_role("button", name="Assign").click()
    owner.wait_for_selector("[data-testid='stAlert']:has-text('Assigned 6 examples (3 with overlap)')")
    wait_for_app(owner)
    screenshot(owner, "team_page")

    # ---- two reviewers, two browser contexts, reviewing their queues at the same time
    a_ctx, alice = new_page(browser)
    b_ctx, bob = new_page(browser)
    sign_in(alice, url, ALICE)
    sign_in(bob, url, BOB)
    open_queue(alice, url)
    open_queue(bob, url)
    assert "your assigned queue" in main_text(alice)
    done = {ALICE: [], BOB: []}
    for _ in range(3):                                            # alice gets a small head start
        done[ALICE].append(step(alice, reject_overlap=False))
    rejected_one = False
    while True:
        a = step(alice, reject_overlap=False)
        b = step(bob, reject_overlap=not rejected_one)
        if a:
            done[ALICE].append(a)
        if b:
            done[BOB].append(b)
            rejected_one = rejected_one or b[1] == "rejected"
        if not a and not b:
            break
    done = {k: [x for x in v if x] for k, v in done.items()}
    for pg in (alice, bob):
        pg.wait_for_selector("text=Nothing to review")
    conflict = next(g for g, v, _ in done[BOB] if v == "rejected")
    overlap = set(g for g, _, _ in done[ALICE]) & set(g for g, _, _ in done[BOB])
    assert len(overlap) == 3 and conflict in overlap
    assert len({g for g, _, _ in done[ALICE]} | {g for g, _, _ in done[BOB]}) == 6     # every example reviewed
    assert any(blind for _, _, blind in done[BOB])                                     # blind at least once

    # bob opens the conflict again: now that he has answered he sees alice's verdict and the status
    goto(bob, url + f"/Review?g={conflict}")
    bob.wait_for_selector("text=in conflict")
    text = main_text(bob)
    assert "alice@example.com accepted" in text and "bob@example.com rejected" in text
    screenshot(bob, "team_review_overlap")
    agreed = next(g for g in overlap if g != conflict)
    goto(bob, url + f"/Review?g={agreed}")
    bob.wait_for_selector("text=agreed")

    # ---- a reviewer cannot open the Generate page's controls, nor export
    goto(alice, url + "/Generate")
    alice.wait_for_selector("text=As a reviewer you cannot use the Generate page")
    assert alice.get_by_role("tab").count() == 0
    assert alice.get_by_role("button", name="Start").count() == 0
    goto(alice, url + "/Dataset")
    alice.wait_for_selector("text=As a reviewer you cannot export the dataset")
    assert alice.get_by_role("button", name="Run checks").count() == 0
    assert alice.locator("[data-testid='stDownloadButton']").count() == 0
    goto(alice, url + "/Review")
    mode(alice, "Agreement").wait_for()                                          # the view switch is there ...
    assert mode(alice, "Conflicts").count() == 0 and mode(alice, "Bulk").count() == 0   # ... without these

    # ---- the owner resolves the conflict (final, audited) and looks at the agreement
    goto(owner, url + "/Review")
    mode(owner, "Conflicts").click()
    wait_for_app(owner)
    owner.wait_for_selector(f"text=Conflict on example #{conflict}")
    owner.get_by_label("Adjudication note").fill("alice is right: the limit is honoured")
    owner.get_by_label("Adjudication note").press("Tab")
    wait_for_app(owner)
    screenshot(owner, "team_conflict")
    owner.get_by_role("button", name="Accept (final)").click()
    owner.wait_for_selector("[data-testid='stToast']:has-text('resolved')")
    wait_for_app(owner)
    owner.wait_for_selector("text=No conflicts")
    mode(owner, "Agreement").click()
    wait_for_app(owner)
    owner.wait_for_selector("text=Between reviewers")
    owner.wait_for_selector("text=Cohen's kappa per pair")
    wait_for_app(owner)
    owner.get_by_text("Between reviewers").scroll_into_view_if_needed()
    screenshot(owner, "team_agreement")
    for c in (own_ctx, a_ctx, b_ctx):
        c.close()
    srv.stop()

    # ---- the audit log and the export name the right people
    with open_store(db) as s:
        actors = {(r[0], r[1]) for r in s.execute("SELECT action, actor FROM audit_log").fetchall()}
        assert ("review.respond", ALICE) in actors and ("review.respond", BOB) in actors
        assert ("review.adjudicate", OWNER) in actors and ("team.role", OWNER) in actors
        single = {g for g, _, _ in done[ALICE] + done[BOB]} - overlap
        for g in single:
            who = ALICE if g in {x for x, _, _ in done[ALICE]} else BOB
            assert s.scalar("SELECT actor FROM audit_log WHERE action = 'review.decide' AND entity_id = ?",
                            [str(g)]) == who
        assert s.scalar("SELECT count(*) FROM review_responses") == len(done[ALICE]) + len(done[BOB])
        res = export_dataset(s, "alpaca", db.parent / "export")
        lines = (db.parent / "export" / "train.jsonl").read_text().splitlines()
        rows = {p["generation_id"]: p for p in (json.loads(line)["provenance"] for line in lines)}
    assert conflict in rows and rows[conflict]["adjudicator"] == OWNER
    assert rows[conflict]["review_status"] == "resolved"
    assert {r["reviewer"]: r["verdict"] for r in rows[conflict]["reviews"]} == {ALICE: "accepted", BOB: "rejected"}
    assert rows[agreed]["reviewer"] == f"{ALICE}, {BOB}" and rows[agreed]["review_status"] == "agreed"
    assert len(rows) == 6
    assert "Overlap: 3 of 6 assigned examples (50%)" in res.card and "alice@example.com vs bob@example.com" in res.card
