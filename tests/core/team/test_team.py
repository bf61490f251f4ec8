"""A team on one Shoal: roles, members, assignment with overlap, per-reviewer responses, status,
blind review, adjudication, agreement between people (Fleiss' kappa against a textbook table)."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from core import review as rv
from core.dataset.export import export_dataset, select_rows
from core.errors import ShoalError
from core.team import members as team
from tests.support.fake_generations import fill_fake


@pytest.fixture
def filled(store):
    fill_fake(store, 120, seed=5)
    return store


def gids(store, n=None):
    ids = [int(r[0]) for r in store.execute("SELECT id FROM generations ORDER BY id").fetchall()]
    return ids[:n] if n else ids


def decide(store, gid, verdict, who, **kw):
    return rv.decide(store, gid, verdict, reviewer=who, expected_version=rv.version_for(store, gid, who), **kw)


# --------------------------------------------------------------------------- roles

def test_role_checks():
    assert team.allowed("owner", "team") and team.allowed("owner", "export")
    assert team.allowed("curator", "export") and team.allowed("curator", "generate")
    assert not team.allowed("curator", "team")
    assert team.allowed("reviewer", "review")
    for action in ("generate", "export", "jobs", "prompts", "checks", "team", "bulk_review", "adjudicate"):
        assert not team.allowed("reviewer", action)
        with pytest.raises(team.NotAllowed, match="As a reviewer you cannot"):
            team.require("reviewer", action)
    with pytest.raises(team.NotAllowed, match="not a team member"):
        team.require(None, "review")
    with pytest.raises(ShoalError, match="Unknown action"):
        team.allowed("owner", "launch")
    assert isinstance(team.NotAllowed("x"), ShoalError)


def test_identity_is_email_else_subject():
    assert team.identity_of({"email": "Ann@Example.com", "sub": "123"}) == "ann@example.com"
    assert team.identity_of({"sub": "abc-123"}) == "abc-123"
    assert team.identity_of({}) is None and team.identity_of(None) is None


def test_signing_in_never_takes_an_ownerless_team_then_members_only(store):
    assert team.sign_in(store, "ann@x.org", "Ann", config={}) is None       # no owner: nobody takes the team
    with pytest.raises(ShoalError, match=r"owner = .* under `\[shoal.team\]`"):
        team.require_owner(store, config={})                                # so the app does not start
    team.set_member(store, "ann@x.org", "owner", actor=team.local("box"), actor_role="owner", config={})
    team.require_owner(store, config={})                                    # `shoal team add ... --role owner`
    assert team.sign_in(store, "ann@x.org", "Ann", config={}) == "owner"
    assert team.sign_in(store, "eve@x.org", config={}) is None              # not a member: no access
    team.set_member(store, "bob@x.org", "reviewer", actor="ann@x.org", actor_role="owner", config={})
    assert team.sign_in(store, "bob@x.org", config={}) == "reviewer"
    with pytest.raises(team.NotAllowed):
        team.set_member(store, "eve@x.org", "owner", actor="bob@x.org", actor_role="reviewer", config={})
    with pytest.raises(ShoalError, match="needs an owner"):
        team.set_member(store, "ann@x.org", "reviewer", actor="ann@x.org", actor_role="owner", config={})
    team.set_member(store, "bob@x.org", "curator", actor="ann@x.org", actor_role="owner", config={})
    assert team.role_of(store, "bob@x.org", config={}) == "curator"
    acts = [r["action"] for r in store.rows("SELECT action FROM audit_log WHERE entity = 'member' ORDER BY id")]
    assert acts == ["team.role", "team.role", "team.role"]


def test_config_file_names_roles_and_wins(store, tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[shoal.team]\nowner = "Boss@X.org"\n[shoal.roles]\n"rita@x.org" = "reviewer"\n')
    config = team.config_roles([secrets])
    assert config == {"boss@x.org": "owner", "rita@x.org": "reviewer"}
    # the config names the owner: the first person to sign in does not take the team
    assert team.sign_in(store, "first@x.org", config=config) is None
    assert team.sign_in(store, "rita@x.org", config=config) == "reviewer"
    assert team.sign_in(store, "boss@x.org", config=config) == "owner"
    with pytest.raises(ShoalError, match="set in the secrets file"):
        team.set_member(store, "rita@x.org", "owner", actor="boss@x.org", actor_role="owner", config=config)
    assert {m.identity: m.role for m in team.members(store, config)} == config
    bad = tmp_path / "bad.toml"
    bad.write_text('[shoal.roles]\n"x@y" = "admin"\n')
    with pytest.raises(ShoalError, match="Unknown role"):
        team.config_roles([bad])


def test_team_settings_are_the_owners_and_audited(store):
    assert team.get_settings(store) == {"reviewers_per_example": 1, "overlap_share": 1.0}
    with pytest.raises(team.NotAllowed):
        team.set_settings(store, actor="c", actor_role="curator", reviewers_per_example=2)
    team.set_settings(store, actor="o", actor_role="owner", reviewers_per_example=2, overlap_share=0.3)
    assert team.set_settings(store, actor="o", actor_role="owner", overlap_share=0.5) == {
        "reviewers_per_example": 2, "overlap_share": 0.5}
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'team.settings' AND actor = 'o'") == 2
    with pytest.raises(ShoalError, match="Unknown team setting"):
        team.set_settings(store, actor="o", actor_role="owner", colour="red")


# --------------------------------------------------------------------------- assignment

def test_assignment_is_balanced_with_the_asked_overlap(filled):
    store = filled
    res = rv.assign(store, ["a", "b", "c"], per_example=2, overlap_share=0.25, seed=1, actor="owner")
    n = len(gids(store))
    assert res.examples == n and res.overlap_examples == round(0.25 * n)
    rows = store.rows("SELECT generation_id, reviewer, needed FROM assignments")
    assert res.rows == len(rows) == n + res.overlap_examples
    per_example = Counter(r["generation_id"] for r in rows)
    needed = {r["generation_id"]: r["needed"] for r in rows}
    assert all(per_example[g] == needed[g] for g in per_example)           # never the same reviewer twice
    loads = Counter(r["reviewer"] for r in rows)
    assert max(loads.values()) - min(loads.values()) <= 1                   # balanced
    assert rv.overlap_summary(store)["by_needed"] == {1: n - res.overlap_examples, 2: res.overlap_examples}
    again = rv.assign(store, ["a", "b"], per_example=2)                     # nothing left unassigned
    assert again.examples == 0
    with pytest.raises(ShoalError, match="needs at least 3 reviewers"):
        rv.assign(store, ["a", "b"], per_example=3)
    audit = store.one("SELECT actor, after FROM audit_log WHERE action = 'team.assign' ORDER BY id LIMIT 1")
    assert audit["actor"] == "owner" and json.loads(audit["after"])["overlap_examples"] == res.overlap_examples


def test_each_reviewers_queue_holds_their_examples_not_yet_done(filled):
    store = filled
    rv.assign(store, ["a", "b"], per_example=2, overlap_share=0.5, seed=2)
    mine = rv.QueueFilter(assigned_to="a")
    theirs = rv.QueueFilter(assigned_to="b")
    a_ids = set(rv.queue_ids(store, mine))
    assert a_ids == {int(r[0]) for r in store.execute("SELECT generation_id FROM assignments WHERE reviewer = 'a'")
                     .fetchall()}
    both = sorted(a_ids & set(rv.queue_ids(store, theirs)))
    only_a = sorted(a_ids - set(both))
    decide(store, both[0], "accepted", "a")
    decide(store, only_a[0], "rejected", "a")
    assert both[0] not in rv.queue_ids(store, mine) and only_a[0] not in rv.queue_ids(store, mine)
    assert both[0] in rv.queue_ids(store, theirs)                           # still to do for b
    assert rv.queue_summary(store, mine)["todo"] == len(a_ids) - 2
    cur = rv.QueueCursor(mine, "oldest", 0)
    first = cur.next_after(store, None)
    assert first in a_ids and first not in (both[0], only_a[0])


# --------------------------------------------------------------------------- status, blind, adjudication

def test_status_follows_the_responses_and_the_effective_verdict_follows_the_status(filled):
    store = filled
    rv.assign(store, ["a", "b"], per_example=2, overlap_share=1.0, seed=3)
    g1, g2 = gids(store, 2)
    eff = lambda g: store.one("SELECT effective_verdict, decided_by, reviewer FROM review_effective "
                              "WHERE generation_id = ?", [g])
    judge_only = eff(g1)
    res = decide(store, g1, "accepted", "a")
    assert res["status"] == "pending" and rv.get_review(store, g1) is None    # no human verdict yet
    assert eff(g1) == judge_only
    assert decide(store, g1, "accepted", "b")["status"] == "agreed"
    assert eff(g1) == {"effective_verdict": "accepted", "decided_by": "human", "reviewer": "a, b"}
    assert rv.example_status(store, g1)["status"] == "agreed"

    decide(store, g2, "accepted", "a")
    assert decide(store, g2, "rejected", "b", note="wrong", reasons=["trivial"])["status"] == "conflict"
    assert rv.get_review(store, g2) is None and rv.conflict_ids(store) == [g2]
    assert rv.status_counts(store)["conflict"] == 1
    with pytest.raises(ShoalError, match="not in conflict"):
        rv.adjudicate(store, g1, "rejected", adjudicator="owner")
    out = rv.adjudicate(store, g2, "rejected", adjudicator="owner", note="b is right")
    assert out["status"] == "resolved"
    assert eff(g2) == {"effective_verdict": "rejected", "decided_by": "human", "reviewer": "owner"}
    with pytest.raises(ShoalError, match="final"):
        rv.adjudicate(store, g2, "accepted", adjudicator="owner")
    with pytest.raises(ShoalError, match="final"):
        decide(store, g2, "accepted", "a")
    adj = store.one("SELECT actor, before, after FROM audit_log WHERE action = 'review.adjudicate'")
    assert adj["actor"] == "owner" and json.loads(adj["before"])["responses"] == {"a": "accepted", "b": "rejected"}
    # a changed mind turns agreement into conflict: the verdict goes until someone decides
    decide(store, g1, "rejected", "b")
    assert rv.example_status(store, g1)["status"] == "conflict" and rv.get_review(store, g1) is None


def test_blind_review_hides_other_verdicts_until_you_give_yours(filled):
    store = filled
    rv.assign(store, ["a", "b"], per_example=2, seed=4)
    g = gids(store, 1)[0]
    decide(store, g, "rejected", "a", note="a thinks so")
    shown, hidden = rv.visible_responses(store, g, "b")
    assert shown == [] and hidden == 1
    assert rv.visible_responses(store, g, "owner", see_all=True)[1] == 0
    decide(store, g, "accepted", "b")
    shown, hidden = rv.visible_responses(store, g, "b")
    assert hidden == 0 and {r["reviewer"]: r["verdict"] for r in shown} == {"a": "rejected", "b": "accepted"}


def test_stale_response_is_refused_and_undo_puts_a_response_back(filled):
    store = filled
    rv.assign(store, ["a", "b"], per_example=2, seed=5)
    g = gids(store, 1)[0]
    decide(store, g, "accepted", "a")
    with pytest.raises(rv.StaleReview):
        rv.decide(store, g, "rejected", reviewer="a", expected_version=0)      # an old tab of a's
    decide(store, g, "accepted", "b")
    assert rv.get_review(store, g)["verdict"] == "accepted"
    res = rv.undo_last(store, "b")
    assert res.action == "review.respond" and res.generation_ids == [g]
    assert rv.get_review(store, g) is None                                     # back to pending
    assert [r["reviewer"] for r in rv.responses(store, g)] == ["a"]
    assert rv.example_status(store, g)["status"] == "pending"


def test_single_reviewer_examples_work_as_before_and_keep_a_response(filled):
    store = filled
    g = gids(store, 1)[0]
    res = rv.decide(store, g, "accepted", reviewer="solo", expected_version=0)
    assert res["version"] == 1 and rv.get_review(store, g)["reviewer"] == "solo"
    assert [(r["reviewer"], r["verdict"]) for r in rv.responses(store, g)] == [("solo", "accepted")]
    assert rv.example_status(store, g)["status"] == "decided"
    rv.undo_last(store, "solo")
    assert rv.get_review(store, g) is None and rv.responses(store, g) == []


def test_review_view_is_what_the_separate_reads_give(filled):
    """The Review page draws one example from `review_view` (each thing read once); it says what
    version_for, example_status, visible_responses, prefilter_stop and get_item say."""
    store = filled
    rv.assign(store, ["a", "b"], per_example=2, overlap_share=0.5, seed=6)
    ids = gids(store)
    overlap = [g for g in ids if rv.is_overlap(store, g)]
    single = [g for g in ids if not rv.is_overlap(store, g)]
    store.execute("UPDATE generations SET prefilter_ok = FALSE, prefilter_reasons = '[\"too short\"]' WHERE id = ?",
                  [single[1]])
    decide(store, overlap[0], "rejected", "a", note="a says no")        # b has not answered: blind for b
    decide(store, overlap[1], "accepted", "a")
    decide(store, overlap[1], "accepted", "b")                          # agreed
    decide(store, single[0], "accepted", "a")

    def check(g, who, see_all=False):
        view = rv.review_view(store, g, who, see_all=see_all)
        item = rv.get_item(store, g)
        assert view["item"] == item and view["needed"] == rv.needed(store, g) == item["needed"]
        assert view["version"] == rv.version_for(store, g, who)
        assert view["stop"] == rv.prefilter_stop(store, g)
        assert view["execution"] is None
        if view["needed"] > 1:
            assert view["team"]["status"] == rv.example_status(store, g)
            assert (view["team"]["shown"], view["team"]["hidden"]) == rv.visible_responses(store, g, who,
                                                                                              see_all=see_all)
        else:
            assert view["team"] is None
        return view

    blind = check(overlap[0], "b")
    assert blind["team"]["hidden"] == 1 and blind["team"]["shown"] == [] and blind["version"] == 0
    assert check(overlap[0], "a")["version"] == 1
    assert check(overlap[0], "owner", see_all=True)["team"]["hidden"] == 0
    assert check(overlap[1], "b")["team"]["status"]["status"] == "agreed"
    assert check(single[0], "a")["version"] == 1
    assert check(single[1], "a")["stop"] == ["too short"]
    assert rv.review_view(store, max(ids) + 1, "a") is None


# --------------------------------------------------------------------------- agreement between people

def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories -> kappa 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert rv.fleiss_kappa(table) == pytest.approx(0.20993, abs=1e-4)
    assert rv.fleiss_kappa([[3, 0], [0, 3]]) == pytest.approx(1.0)
    assert rv.fleiss_kappa([[2, 0], [2, 0]]) is None                           # one category only
    assert rv.fleiss_kappa([[1, 0]]) is None                                   # one rater


def test_people_agreement_pairs_fleiss_reasons_rules_and_progress(filled):
    store = filled
    rv.assign(store, ["a", "b"], per_example=2, seed=6)
    ids = gids(store, 20)
    pattern = {}
    for i, g in enumerate(ids):
        va = "accepted" if i % 2 else "rejected"
        vb = va if i % 5 else ("accepted" if va == "rejected" else "rejected")
        decide(store, g, va, "a", reasons=["trivial"] if va == "rejected" else None)
        decide(store, g, vb, "b", reasons=["trivial"] if vb == "rejected" and i % 3 else None)
        pattern[g] = (va, vb)
    res = rv.people_agreement(store)
    (pair,) = res["pairs"]
    tp = sum(1 for a, b in pattern.values() if a == b == "accepted")
    tn = sum(1 for a, b in pattern.values() if a == b == "rejected")
    fp = sum(1 for a, b in pattern.values() if (a, b) == ("accepted", "rejected"))
    fn = sum(1 for a, b in pattern.values() if (a, b) == ("rejected", "accepted"))
    assert (pair["both_accepted"], pair["both_rejected"], pair["a_accepted_b_rejected"],
            pair["a_rejected_b_accepted"]) == (tp, tn, fp, fn)
    n = len(ids)
    po, pe = (tp + tn) / n, ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n ** 2
    assert pair["kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert sorted(pair["examples"]["a_accepted_b_rejected"]) == sorted(
        g for g, v in pattern.items() if v == ("accepted", "rejected"))
    fl = res["fleiss"]
    assert fl["n_examples"] == n and fl["split"] == fp + fn
    assert set(fl["split_examples"]) == {g for g, (a, b) in pattern.items() if a != b}
    assert fl["kappa"] == pytest.approx(rv.fleiss_kappa(
        [[(a == "accepted") + (b == "accepted"), (a == "rejected") + (b == "rejected")] for a, b in pattern.values()]))
    assert "trivial" in res["per_reason"] and res["per_reason"]["trivial"]["split_examples"]
    assert res["per_rule"] and all(v["n"] > 0 for v in res["per_rule"].values())
    prog = {p["reviewer"]: p for p in res["progress"]}
    assert prog["a"]["done"] == n and prog["a"]["to_do"] == prog["a"]["assigned"] - n
    assert prog["a"]["accepted"] + prog["a"]["rejected"] == n


def test_export_carries_every_verdict_and_the_card_states_overlap_and_agreement(filled, tmp_path):
    store = filled
    rv.assign(store, ["a", "b"], per_example=2, overlap_share=1.0, seed=7)
    g1, g2, g3 = gids(store, 3)
    for who in ("a", "b"):
        decide(store, g1, "accepted", who)
    decide(store, g2, "accepted", "a")
    decide(store, g2, "rejected", "b")
    decide(store, g3, "accepted", "a")                                         # pending: b has not reviewed
    sel = select_rows(store, include_judged=True)
    rows = {r["provenance"]["generation_id"]: r["provenance"] for r in sel.rows}
    assert rows[g1]["reviews"] == [{"reviewer": "a", "verdict": "accepted"}, {"reviewer": "b", "verdict": "accepted"}]
    assert rows[g1]["review_status"] == "agreed" and rows[g1]["review_verdict"] == "accepted"
    assert g2 not in rows and g3 not in rows                                   # never exported on the judge's word
    assert sel.excluded["reviewers disagree (waiting for adjudication)"] == 1
    rv.adjudicate(store, g2, "accepted", adjudicator="boss")
    res = export_dataset(store, "parquet", tmp_path / "out")
    import pandas as pd
    prov = {p["generation_id"]: p for p in pd.read_parquet(tmp_path / "out" / "train.parquet")["provenance"]}
    assert prov[g2]["adjudicator"] == "boss" and prov[g2]["review_status"] == "resolved"
    assert [r["reviewer"] for r in prov[g2]["reviews"]] == ["a", "b"]
    card = res.card
    assert "## Reviewers and agreement" in card and "Fleiss' kappa" in card
    assert f"Overlap: {len(gids(store))} of {len(gids(store))} assigned examples (100%)" in card
    assert "a vs b: Cohen's kappa" in card and "resolved by adjudication 1" in card
