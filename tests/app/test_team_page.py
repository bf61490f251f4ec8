"""Team page and the Review page's team views (AppTest) with sign-in configured and a signed-in
user (AppTest.user): the role table, the overlap setting, the agreement figures between reviewers,
and an adjudication recorded under the adjudicator's name."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core import review as rv
from core.store import open_store
from core.team import members as team
from tests.support.apptest import ran, shared_store
from tests.support.team_page import TEAM_PAGE, as_user

REVIEW_PAGE = "pages/4_Review.py"


def role_table(at: AppTest) -> dict[str, str]:
    df = next(d.value for d in at.dataframe if "member" in d.value.columns)
    return dict(zip(df["member"], df["role"]))


def add_member(at: AppTest, identity: str, role: str) -> None:
    at.text_input(key="tm_identity").input(identity)
    at.selectbox(key="tm_role").set_value(role)
    ran(at.button(key="FormSubmitter:tm_member_form-Add / change").click())


def test_team_page_roles_and_overlap_setting(team_db):
    at = ran(as_user(TEAM_PAGE, "ann@example.com", "Ann"))             # the owner, named before the start
    assert role_table(at) == {"ann@example.com": "owner"}
    add_member(at, "bob@example.com", "reviewer")
    add_member(at, "dan@example.com", "reviewer")
    add_member(at, "cy@example.com", "curator")
    assert role_table(at) == {"ann@example.com": "owner", "bob@example.com": "reviewer",
                              "dan@example.com": "reviewer", "cy@example.com": "curator"}
    assert any("cy@example.com is now curator" in s.value for s in at.success)

    assert at.multiselect(key="tm_reviewers").value == ["bob@example.com", "dan@example.com"]   # the reviewers
    ran(at.number_input(key="tm_per").set_value(2))
    ran(at.slider(key="tm_share").set_value(50))
    assert at.slider(key="tm_share").value == 50 and not at.slider(key="tm_share").disabled
    ran(at.button(key="tm_assign").click())
    store = shared_store(team_db)
    assert rv.overlap_summary(store)["by_needed"] == {1: 30, 2: 30}
    assert team.get_settings(store) == {"reviewers_per_example": 2, "overlap_share": 0.5}
    assert store.scalar("SELECT actor FROM audit_log WHERE action = 'team.assign'") == "ann@example.com"
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Generated"], metrics["Assigned"], metrics["With overlap"]) == ("60", "60", "30")

    again = ran(as_user(TEAM_PAGE, "ann@example.com"))                  # a new session shows the setting
    assert again.number_input(key="tm_per").value == 2 and again.slider(key="tm_share").value == 50

    bob = ran(as_user(TEAM_PAGE, "bob@example.com"))                    # a reviewer sees the team, no controls
    assert role_table(bob)["bob@example.com"] == "reviewer"
    assert not [b for b in bob.button if b.key in ("tm_assign", "tm_remove_go")]
    assert not [t for t in bob.text_input if t.key == "tm_identity"]
    progress = next(d.value for d in bob.dataframe if "reviewer" in d.value.columns)
    assert set(progress["reviewer"]) == {"bob@example.com", "dan@example.com"}


@pytest.fixture
def conflict_db(team_db):
    """Bob and Dan review every example twice over: they agree on some, split on others."""
    with open_store(team_db) as s:
        team.sign_in(s, "ann@example.com", "Ann", config={})             # the owner (team_db) signs in
        for who, role in (("bob@example.com", "reviewer"), ("dan@example.com", "reviewer"),
                          ("cy@example.com", "curator")):
            team.set_member(s, who, role, actor="ann@example.com", actor_role="owner", config={})
        rv.assign(s, ["bob@example.com", "dan@example.com"], per_example=2, seed=2)
        ids = [int(r[0]) for r in s.execute("SELECT id FROM generations ORDER BY id LIMIT 12").fetchall()]
        for i, g in enumerate(ids):
            vb = "accepted" if i % 2 else "rejected"
            vd = vb if i % 3 else ("accepted" if vb == "rejected" else "rejected")
            for who, v in (("bob@example.com", vb), ("dan@example.com", vd)):
                rv.decide(s, g, v, reviewer=who, expected_version=rv.version_for(s, g, who),
                          note=f"{who[:3]} says {v}")
    return team_db


def test_agreement_figures_between_reviewers_are_the_ones_computed(conflict_db):
    store = shared_store(conflict_db)
    want = rv.people_agreement(store)
    at = ran(as_user(REVIEW_PAGE, "cy@example.com"))
    at.segmented_control(key="rv_mode").set_value("Agreement")
    ran(at)
    metrics = {m.label: m.value for m in at.metric}
    fl = want["fleiss"]
    assert metrics["Reviewers"] == "2"
    assert metrics["Examples with 2+ verdicts"] == str(fl["n_examples"]) == "12"
    assert metrics["Split"] == str(fl["split"]) == "4"
    assert metrics["Fleiss' kappa"] == f"{fl['kappa']:.2f}"
    pairs = next(d.value for d in at.dataframe if {"a", "b", "kappa"} <= set(d.value.columns))
    (pair,) = want["pairs"]
    row = pairs.iloc[0]
    assert (row["a"], row["b"], int(row["n"])) == ("bob@example.com", "dan@example.com", 12)
    assert float(row["kappa"]) == pytest.approx(pair["kappa"])
    assert int(row["a_accepted_b_rejected"]) + int(row["a_rejected_b_accepted"]) == 4


def test_conflicts_view_records_the_adjudication_under_the_adjudicators_name(conflict_db):
    store = shared_store(conflict_db)
    conflicts = rv.conflict_ids(store)
    assert len(conflicts) == 4
    bob = ran(as_user(REVIEW_PAGE, "bob@example.com"))                  # reviewers do not adjudicate
    assert "Conflicts" not in bob.segmented_control(key="rv_mode").options

    at = ran(as_user(REVIEW_PAGE, "cy@example.com"))
    at.segmented_control(key="rv_mode").set_value("Conflicts")
    ran(at)
    assert any("**4 in conflict**" in m.value for m in at.markdown)
    gid = at.selectbox(key="rv_conflict").value
    assert gid == conflicts[0]
    shown = at.table[0].value
    assert set(shown.index) == {"bob@example.com", "dan@example.com"}
    assert set(shown["verdict"]) == {"accepted", "rejected"}
    at.text_input(key=f"rv_adj_note_{gid}").input("dan read the tests")
    ran(at.button(key="rv_adj_accept").click())
    adj = store.one("SELECT verdict, adjudicator, note FROM adjudications WHERE generation_id = ?", [gid])
    assert adj == {"verdict": "accepted", "adjudicator": "cy@example.com", "note": "dan read the tests"}
    audit = store.one("SELECT actor, after FROM audit_log WHERE action = 'review.adjudicate' AND entity_id = ?",
                      [str(gid)])
    assert audit["actor"] == "cy@example.com"
    assert rv.example_status(store, gid)["status"] == "resolved"
    assert rv.get_review(store, gid)["reviewer"] == "cy@example.com"        # the final verdict, signed
    assert any(f"#{gid} resolved: accepted (final)" in t.value for t in at.toast)
    assert any("**3 in conflict**" in m.value and "resolved 1" in m.value for m in at.markdown)
    assert gid not in rv.conflict_ids(store)


def test_a_member_name_is_shown_as_text_in_the_flash_message(team_db):
    """An identity is typed by a person (or comes from a provider): Markdown in it is not drawn."""
    at = ran(as_user(TEAM_PAGE, "ann@example.com", "Ann"))
    add_member(at, "**x**![b](http://127.0.0.1:9/beacon)", "reviewer")
    shown = [s.value for s in at.success]
    assert shown and "\\*\\*x\\*\\*!\\[b\\]" in shown[0], shown
