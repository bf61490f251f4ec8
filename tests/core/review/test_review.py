"""Review core: verdicts, stale saves, edits, undo, bulk + undo, audit, queue filters, agreement."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core import review as rv
from core.errors import ShoalError
from tests.support.fake_generations import fill_fake


@pytest.fixture
def filled(store):
    info = fill_fake(store, 240, seed=3)
    return store, info


def audit(store, action=None):
    sql = "SELECT * FROM audit_log" + (" WHERE action = ?" if action else "") + " ORDER BY id"
    rows = store.rows(sql, [action] if action else [])
    for r in rows:
        r["before"] = json.loads(r["before"]) if r["before"] else None
        r["after"] = json.loads(r["after"]) if r["after"] else None
    return rows


def test_decide_writes_review_and_audit(filled):
    store, info = filled
    gid = info["generation_ids"][0]
    r1 = rv.decide(store, gid, "accepted", reviewer="ann", expected_version=0)
    assert r1["version"] == 1
    r2 = rv.decide(store, gid, "rejected", reviewer="bob", expected_version=1, note="wrong output",
                   reasons=["wrong or incomplete solution"])
    assert r2["version"] == 2
    row = rv.get_review(store, gid)
    assert (row["verdict"], row["reviewer"], row["note"], row["version"]) == ("rejected", "bob", "wrong output", 2)
    assert row["reasons"] == ["wrong or incomplete solution"]
    log = audit(store, "review.decide")
    assert [(a["actor"], a["entity_id"]) for a in log] == [("ann", str(gid)), ("bob", str(gid))]
    assert log[0]["before"] is None and log[0]["after"]["verdict"] == "accepted"
    assert log[1]["before"]["verdict"] == "accepted" and log[1]["after"]["verdict"] == "rejected"
    assert log[0]["created_at"] is not None and log[0]["batch_id"] != log[1]["batch_id"]


def test_bad_decisions_are_refused_with_a_message(filled):
    store, info = filled
    gid = info["generation_ids"][1]
    with pytest.raises(ShoalError, match="Unknown verdict"):
        rv.decide(store, gid, "maybe", reviewer="ann", expected_version=0)
    with pytest.raises(ShoalError, match="reviewer name"):
        rv.decide(store, gid, "accepted", reviewer="  ", expected_version=0)
    with pytest.raises(ShoalError, match="no generated example"):
        rv.decide(store, 10**9, "accepted", reviewer="ann", expected_version=0)
    with pytest.raises(ShoalError, match="unknown field"):
        rv.decide(store, gid, "accepted", reviewer="ann", expected_version=0, edited_fields={"bogus": "x"})
    assert store.scalar("SELECT count(*) FROM reviews") == 0
    assert store.scalar("SELECT count(*) FROM audit_log") == 0


def test_stale_version_is_refused_and_nothing_written(filled):
    store, info = filled
    gid = info["generation_ids"][2]
    seen_by_tab1 = rv.current_version(store, gid)
    seen_by_tab2 = rv.current_version(store, gid)
    rv.decide(store, gid, "accepted", reviewer="ann", expected_version=seen_by_tab1)
    with pytest.raises(rv.StaleReview, match="changed after you opened it") as exc:
        rv.decide(store, gid, "rejected", reviewer="bob", expected_version=seen_by_tab2, note="late")
    assert "ann" in str(exc.value) and "NOT saved" in str(exc.value)
    row = rv.get_review(store, gid)
    assert (row["verdict"], row["reviewer"], row["version"]) == ("accepted", "ann", 1)
    assert store.scalar("SELECT count(*) FROM audit_log") == 1


def test_edit_then_accept_keeps_the_edited_copy(filled):
    store, info = filled
    gid = info["generation_ids"][3]
    fields = rv.get_item(store, gid)["generation"]["fields"]
    key = next(k for k in fields if k != "task_name")
    rv.decide(store, gid, "accepted", reviewer="ann", expected_version=0,
              edited_fields={key: "An edited text."})
    row = rv.get_review(store, gid)
    assert row["edited_fields"] == {**fields, key: "An edited text."}
    eff = store.one("SELECT effective_verdict, decided_by, effective_fields, edited FROM review_effective "
                    "WHERE generation_id = ?", [gid])
    assert eff["effective_verdict"] == "accepted" and eff["decided_by"] == "human" and eff["edited"]
    assert json.loads(eff["effective_fields"])[key] == "An edited text."
    # a later plain verdict keeps the edit; an "edit" identical to the original stores none
    rv.decide(store, gid, "rejected", reviewer="ann", expected_version=1)
    assert rv.get_review(store, gid)["edited_fields"][key] == "An edited text."
    gid2 = info["generation_ids"][4]
    f2 = rv.get_item(store, gid2)["generation"]["fields"]
    rv.decide(store, gid2, "accepted", reviewer="ann", expected_version=0, edited_fields=dict(f2))
    assert rv.get_review(store, gid2)["edited_fields"] is None


def test_human_verdict_overrides_judge_in_the_view(filled):
    store, info = filled
    failed = store.scalar("SELECT generation_id FROM latest_judgments WHERE NOT overall LIMIT 1")
    passed = store.scalar("SELECT generation_id FROM latest_judgments WHERE overall LIMIT 1")
    eff = lambda g: store.one("SELECT effective_verdict, decided_by FROM review_effective WHERE generation_id = ?", [g])
    assert eff(failed) == {"effective_verdict": "rejected", "decided_by": "judge"}
    rv.decide(store, failed, "accepted", reviewer="ann", expected_version=0)
    rv.decide(store, passed, "rejected", reviewer="ann", expected_version=0)
    assert eff(failed) == {"effective_verdict": "accepted", "decided_by": "human"}
    assert eff(passed) == {"effective_verdict": "rejected", "decided_by": "human"}
    rv.decide(store, passed, "skipped", reviewer="ann", expected_version=1)  # a skip is not a verdict
    assert eff(passed) == {"effective_verdict": "accepted", "decided_by": "judge"}
    # the SQL helper agrees with the view everywhere
    n_diff = store.scalar(f"""
        SELECT count(*) FROM generations g LEFT JOIN latest_judgments j ON j.generation_id = g.id
        LEFT JOIN reviews r ON r.generation_id = g.id JOIN review_effective e ON e.generation_id = g.id
        WHERE ({rv.effective_verdict_sql()}) IS DISTINCT FROM e.effective_verdict""")
    assert n_diff == 0


def test_undo_last_restores_in_reverse_order_and_versions_never_repeat(filled):
    store, info = filled
    a, b = info["generation_ids"][5:7]
    rv.decide(store, a, "accepted", reviewer="ann", expected_version=0)
    rv.decide(store, a, "rejected", reviewer="ann", expected_version=1, note="second thoughts")
    rv.decide(store, b, "accepted", reviewer="ann", expected_version=0)
    rv.decide(store, b, "rejected", reviewer="zed", expected_version=1)  # someone else's action
    with pytest.raises(rv.StaleReview):       # ann's last action on b was overwritten by zed
        rv.undo_last(store, "ann")
    assert rv.get_review(store, b)["reviewer"] == "zed"
    res = rv.undo_last(store, "zed")
    assert res.generation_ids == [b] and rv.get_review(store, b)["verdict"] == "accepted"
    res = rv.undo_last(store, "ann")          # ann's b-accept (now current again)
    assert res.generation_ids == [b] and rv.get_review(store, b) is None
    res = rv.undo_last(store, "ann")          # the reject of a -> back to accepted
    assert res.generation_ids == [a]
    row = rv.get_review(store, a)
    assert row["verdict"] == "accepted" and row["note"] is None and row["version"] == 3
    with pytest.raises(rv.StaleReview):       # a tab that still shows version 2 cannot save
        rv.decide(store, a, "rejected", reviewer="ann", expected_version=2)
    rv.undo_last(store, "ann")
    assert rv.get_review(store, a) is None
    with pytest.raises(rv.NothingToUndo):
        rv.undo_last(store, "ann")
    # a fresh decision after everything was undone still gets a brand-new version number
    assert rv.decide(store, a, "accepted", reviewer="ann", expected_version=0)["version"] == 4
    undo_rows = audit(store, "review.undo")
    assert len(undo_rows) == 4 and all(r["actor"] in ("ann", "zed") for r in undo_rows)
    assert len(audit(store, rv.UNDO_MARKER)) == 4


def test_bulk_accept_over_a_filter_and_undo_as_one_action(filled):
    store, info = filled
    f = rv.QueueFilter(tasks=("code_summarization", "code_generation"), judge="passed", status="any")
    expected = set(store.df("""
        SELECT g.id FROM generations g JOIN judgments j ON j.generation_id = g.id
        WHERE g.task IN ('code_summarization', 'code_generation') AND j.overall""")["id"])
    assert len(expected) > 10
    manual = sorted(expected)[0]
    rv.decide(store, manual, "rejected", reviewer="ann", expected_version=0, note="keep me")
    pre = rv.bulk_preview(store, f, "accepted")
    assert (pre.matching, pre.to_change, pre.already) == (len(expected), len(expected) - 1, 0)
    res = rv.bulk_decide(store, f, "accepted", reviewer="bob", note="bulk")
    assert res.changed == len(expected) - 1
    accepted = set(store.df("SELECT generation_id FROM reviews WHERE verdict = 'accepted'")["generation_id"])
    assert accepted == expected - {manual}
    assert rv.get_review(store, manual)["note"] == "keep me"      # human verdict not overwritten
    assert store.scalar("SELECT count(DISTINCT batch_id) FROM reviews WHERE verdict = 'accepted'") == 1
    bulk_log = audit(store, "review.bulk")
    assert len(bulk_log) == res.changed and {r["batch_id"] for r in bulk_log} == {res.batch_id}
    assert all(r["before"] is None and r["after"]["verdict"] == "accepted" and r["actor"] == "bob" for r in bulk_log)

    # overwrite: the manual reject becomes accepted too; undo brings the reject (and its note) back
    res2 = rv.bulk_decide(store, f, "accepted", reviewer="bob", overwrite=True)
    assert res2.changed == 1 and rv.get_review(store, manual)["verdict"] == "accepted"
    u2 = rv.undo_last(store, "bob")
    assert u2.action_id == res2.batch_id and u2.generation_ids == [manual]
    assert rv.get_review(store, manual)["verdict"] == "rejected" and rv.get_review(store, manual)["note"] == "keep me"

    # one example changed after the bulk action: undo leaves it, restores all others
    changed_since = sorted(expected - {manual})[0]
    rv.decide(store, changed_since, "rejected", reviewer="cat", expected_version=rv.current_version(store, changed_since))
    u = rv.undo_action(store, res.batch_id, reviewer="bob")
    assert (u.restored, u.not_restored) == (res.changed - 1, 1)
    left = store.df("SELECT generation_id, verdict FROM reviews ORDER BY 1")
    assert dict(zip(left["generation_id"], left["verdict"])) == {manual: "rejected", changed_since: "rejected"}
    with pytest.raises(rv.NothingToUndo):
        rv.undo_action(store, res.batch_id, reviewer="bob")


def _pandas_queue(store, info):
    """The queue's inputs as one DataFrame, computed without the module's SQL."""
    g = store.df("SELECT id, snippet_id, task, target_language, fields FROM generations")
    s = store.df("SELECT id AS snippet_id, language, code FROM snippets")
    j = store.df("SELECT generation_id AS id, overall, rules, id AS jid FROM judgments").sort_values("jid")
    j = j.groupby("id").last().reset_index()
    r = store.df("SELECT generation_id AS id, verdict, reviewer, note FROM reviews")
    mp = store.df("SELECT snippet_id, cluster FROM map_points WHERE map_id = ?", [info["map_id"]])
    sel = set(store.df("SELECT snippet_id FROM selection_items WHERE selection_id = ?",
                       [info["selection_id"]])["snippet_id"])
    df = g.merge(s, on="snippet_id", how="left").merge(j, on="id", how="left").merge(r, on="id", how="left")
    df = df.merge(mp, on="snippet_id", how="left")
    df["in_selection"] = df["snippet_id"].isin(sel)
    df["failed"] = df["rules"].map(lambda x: {e["rule"] for e in json.loads(x) if e["answer"] == "no"}
                                   if isinstance(x, str) else set())
    return df


def test_queue_filters_match_an_independent_computation(filled):
    store, info = filled
    ids = info["generation_ids"]
    rv.decide(store, ids[10], "accepted", reviewer="ann", expected_version=0)
    rv.decide(store, ids[11], "rejected", reviewer="bob", expected_version=0, note="Needs QuUx handling")
    rv.decide(store, ids[12], "skipped", reviewer="ann", expected_version=0)
    df = _pandas_queue(store, info)
    rule = "the solution imports what it needs"
    cases = [
        (rv.QueueFilter(status="any"), np.ones(len(df), bool)),
        (rv.QueueFilter(), df["verdict"].isna() | (df["verdict"] == "skipped")),
        (rv.QueueFilter(status="unreviewed"), df["verdict"].isna()),
        (rv.QueueFilter(status="reviewed"), df["verdict"].isin(["accepted", "rejected"])),
        (rv.QueueFilter(status="any", reviewer="ann"), df["reviewer"] == "ann"),
        (rv.QueueFilter(status="any", tasks=("code_repair",)), df["task"] == "code_repair"),
        (rv.QueueFilter(status="any", languages=("java",)),
         (df["language"] == "java") | (df["target_language"] == "java")),
        (rv.QueueFilter(status="any", clusters=(1, 2)), df["cluster"].isin([1, 2])),
        (rv.QueueFilter(status="any", selection_id=info["selection_id"]), df["in_selection"]),
        (rv.QueueFilter(status="any", judge="passed"), df["overall"] == True),  # noqa: E712
        (rv.QueueFilter(status="any", judge="failed"), df["overall"] == False),  # noqa: E712
        (rv.QueueFilter(status="any", judge="unjudged"), df["overall"].isna()),
        (rv.QueueFilter(status="any", rule=rule), df["failed"].map(lambda s: rule in s)),
        (rv.QueueFilter(status="any", rule=rule, rule_answer="yes"),
         df["rules"].map(lambda x: isinstance(x, str) and any(e["rule"] == rule and e["answer"] == "yes"
                                                             for e in json.loads(x)))),
        (rv.QueueFilter(status="any", search="MERGE"),
         df["fields"].str.lower().str.contains("merge") | df["code"].str.lower().str.contains("merge")),
        (rv.QueueFilter(status="any", search="quux"), df["id"] == ids[11]),
        (rv.QueueFilter(status="any", search=f"#{ids[7]}"), df["id"] == ids[7]),
        (rv.QueueFilter(status="any", search="a.b(c"), np.zeros(len(df), bool)),   # regex chars are literal
    ]
    for f, mask in cases:
        want = set(df.loc[np.asarray(mask, bool), "id"])
        assert set(rv.queue_ids(store, f)) == want, f
        assert rv.queue_summary(store, f)["in_filter"] == len(want), f
    with pytest.raises(ShoalError):
        rv.QueueFilter(status="done")


@pytest.mark.parametrize("sort", list(rv.SORTS))
def test_cursor_walks_the_queue_in_sort_order(filled, sort):
    store, info = filled
    f = rv.QueueFilter(status="any", tasks=("code_generation", "code_repair"))
    order = list(rv.queue_page(store, f, sort, seed=7, limit=1000)["id"])
    assert sorted(order) == sorted(rv.queue_ids(store, f))
    cur = rv.QueueCursor(f, sort, 7, window=5)
    walked, gid = [], None
    while (gid := cur.next_after(store, gid)) is not None:
        walked.append(gid)
    assert walked == order
    if sort == "judge_failed_first":
        overall = store.df("SELECT generation_id, overall FROM latest_judgments").set_index("generation_id")["overall"]
        ranks = [0 if overall.get(g) is False else (2 if overall.get(g) is True else 1) for g in order]
        assert ranks == sorted(ranks)
    summary = rv.queue_summary(store, f, sort, 7, current_id=order[3])
    assert summary["position"] == 4 and summary["in_filter"] == len(order)
    assert rv.queue_window(store, f, sort, 7, after_id=order[5], direction=-1, limit=2) == [order[4], order[3]]


def test_todo_queue_moves_on_after_each_decision(filled):
    store, info = filled
    f = rv.QueueFilter(tasks=("code_translation",))
    cur = rv.QueueCursor(f, "oldest", 0, window=3)
    first = cur.next_after(store, None)
    order = list(rv.queue_page(store, f, "oldest", limit=1000)["id"])
    assert first == order[0]
    rv.decide(store, order[1], "accepted", reviewer="zed", expected_version=0)  # another reviewer, ahead
    rv.decide(store, first, "accepted", reviewer="ann", expected_version=0)
    assert cur.next_after(store, first) == order[2]          # order[1] no longer matches "todo"
    assert rv.queue_summary(store, f, "oldest", 0, current_id=first)["position"] is None


def test_agreement_and_kappa_match_sklearn(filled):
    from sklearn.metrics import cohen_kappa_score
    store, info = filled
    rng = np.random.default_rng(0)
    judged = store.df("SELECT generation_id, overall, rules FROM latest_judgments ORDER BY generation_id")
    pick = judged.sample(80, random_state=1)
    for row in pick.itertuples():   # humans agree with the judge ~75% of the time
        human = bool(row.overall) if rng.random() < 0.75 else not bool(row.overall)
        rv.decide(store, int(row.generation_id), "accepted" if human else "rejected", reviewer="ann", expected_version=0)
    skip = judged[~judged["generation_id"].isin(pick["generation_id"])].iloc[0]["generation_id"]
    rv.decide(store, int(skip), "skipped", reviewer="ann", expected_version=0)   # not counted
    res = rv.agreement(store)
    pairs = store.df("""SELECT g.task, j.overall, r.verdict = 'accepted' AS human, j.rules FROM generations g
                        JOIN latest_judgments j ON j.generation_id = g.id JOIN reviews r ON r.generation_id = g.id
                        WHERE r.verdict IN ('accepted', 'rejected')""")
    assert res["overall"]["n"] == len(pairs) == 80
    assert res["overall"]["kappa"] == pytest.approx(cohen_kappa_score(pairs["overall"], pairs["human"]))
    assert res["overall"]["agreement"] == pytest.approx((pairs["overall"] == pairs["human"]).mean())
    for task, grp in pairs.groupby("task"):
        want = cohen_kappa_score(grp["overall"], grp["human"]) if grp["overall"].nunique() + grp["human"].nunique() > 2 else None
        got = res["per_task"][task]["kappa"]
        assert (got is None and (want is None or np.isnan(want))) or got == pytest.approx(want), task
    per_rule = {}
    for p in pairs.itertuples():
        for e in json.loads(p.rules):
            per_rule.setdefault(e["rule"], []).append((e["answer"] == "yes", p.human))
    assert set(res["per_rule"]) == set(per_rule)
    for rule, items in per_rule.items():
        a, b = zip(*items)
        cell = res["per_rule"][rule]
        assert cell["n"] == len(items)
        assert cell["judge_no_rejected"] == sum(1 for x, y in items if not x and not y)
        if len(set(a)) > 1 or len(set(b)) > 1:
            want = cohen_kappa_score(a, b)
            if not np.isnan(want):
                assert cell["kappa"] == pytest.approx(want), rule
    # the examples behind a cell are one filter away
    f = rv.cell_filter(rv.QueueFilter(), judge_yes=False, human_accepted=True)
    assert rv.queue_summary(store, f)["in_filter"] == res["overall"]["judge_no_accepted"]
    rule = next(iter(per_rule))
    f = rv.cell_filter(rv.QueueFilter(), judge_yes=True, human_accepted=False, rule=rule)
    assert rv.queue_summary(store, f)["in_filter"] == res["per_rule"][rule]["judge_yes_rejected"]


def test_kappa_edge_cases():
    assert rv.kappa_from_counts(0, 0, 0, 0) is None
    assert rv.kappa_from_counts(5, 0, 0, 0) is None          # one label only: undefined
    assert rv.kappa_from_counts(5, 0, 0, 5) == pytest.approx(1.0)
    assert rv.kappa_from_counts(0, 5, 5, 0) == pytest.approx(-1.0)


def test_cli_bulk_status_and_undo(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from core.cli.main import app
    from core.store import open_store
    db = tmp_path / "cli.duckdb"
    with open_store(db) as s:
        fill_fake(s, 150, seed=5)
        n_pass = s.scalar("SELECT count(*) FROM latest_judgments j JOIN generations g ON g.id = j.generation_id "
                          "WHERE j.overall AND g.task = 'code_generation'")
    run = lambda *a: CliRunner().invoke(app, ["--db", str(db), *a], catch_exceptions=False)
    out = run("review", "--accept-judged", "--filter", "task=code_generation", "--dry-run", "--reviewer", "cli")
    assert out.exit_code == 0, out.output
    out = run("review", "--accept-judged", "--filter", "task=code_generation", "--reviewer", "cli")
    assert out.exit_code == 0, out.output
    out = run("review", "--status", "--json")
    data = json.loads(out.stdout)
    assert data["totals"]["accepted"] == n_pass
    assert data["reviewers"] == [{"reviewer": "cli", "n": n_pass}]
    out = run("review", "--undo", "--reviewer", "cli")
    assert out.exit_code == 0
    assert json.loads(run("review", "--status", "--json").stdout)["totals"]["accepted"] == 0
    bad = run("review", "--accept-judged", "--filter", "colour=blue")
    assert bad.exit_code == 1 and "Unknown filter key" in bad.output
    assert run("review").exit_code == 1
    human = run("review", "--status")
    assert human.exit_code == 0


def test_undo_keeps_a_tombstone_that_reads_as_no_review(filled):
    store, info = filled
    gid = info["generation_ids"][20]
    judge = store.scalar("SELECT overall FROM latest_judgments WHERE generation_id = ?", [gid])
    rv.decide(store, gid, "rejected", reviewer="ann", expected_version=0, note="n", reasons=["trivial"])
    rv.decide(store, gid, "accepted", reviewer="ann", expected_version=1)
    rv.undo_last(store, "ann")
    rv.undo_last(store, "ann")
    tomb = store.one("SELECT * FROM review_records WHERE generation_id = ?", [gid])
    assert tomb["undone_at"] is not None and tomb["version"] == 3
    assert all(tomb[k] is None for k in ("verdict", "note", "reasons", "edited_fields", "reviewer", "batch_id"))
    assert rv.get_review(store, gid) is None and rv.current_version(store, gid) == 0
    assert store.scalar("SELECT count(*) FROM reviews WHERE generation_id = ?", [gid]) == 0
    eff = store.one("SELECT human_verdict, reviewer, review_version, effective_verdict, decided_by "
                    "FROM review_effective WHERE generation_id = ?", [gid])
    want = None if judge is None else ("accepted" if judge else "rejected")
    assert eff == {"human_verdict": None, "reviewer": None, "review_version": None,
                   "effective_verdict": want, "decided_by": None if judge is None else "judge"}
    assert gid in rv.queue_ids(store, rv.QueueFilter(status="unreviewed"))
    # a bulk action over the tombstone revives it with the next version; its undo buries it again
    res = rv.bulk_decide(store, rv.QueueFilter(status="any", search=f"#{gid}"), "accepted", reviewer="bob")
    assert res.changed == 1 and rv.get_review(store, gid)["version"] == 4
    rv.undo_action(store, res.batch_id, reviewer="bob")
    assert rv.get_review(store, gid) is None
    assert store.scalar("SELECT version FROM review_records WHERE generation_id = ?", [gid]) == 4
    assert rv.decide(store, gid, "skipped", reviewer="cat", expected_version=0)["version"] == 5


# --------------------------------------------------------------------------- a team (per-reviewer responses)

def test_undo_moves_the_deciders_response_copy_back_with_the_review(filled):
    store, info = filled
    gid = info["generation_ids"][0]
    rv.decide(store, gid, "rejected", reviewer="ann", expected_version=0, reasons=["trivial"])
    rv.decide(store, gid, "accepted", reviewer="ann", expected_version=1)
    rv.decide(store, gid, "rejected", reviewer="bob", expected_version=2)
    resp = lambda: {r["reviewer"]: r["verdict"] for r in rv.responses(store, gid)}
    assert resp() == {"ann": "accepted", "bob": "rejected"}
    rv.undo_last(store, "bob")                       # the review goes back to ann's; bob's response goes
    assert rv.get_review(store, gid)["reviewer"] == "ann" and resp() == {"ann": "accepted"}
    rv.undo_last(store, "ann")                       # ann's response follows her review back to reject
    assert rv.get_review(store, gid)["verdict"] == "rejected"
    (ann,) = rv.responses(store, gid)
    assert (ann["verdict"], ann["reasons"]) == ("rejected", ["trivial"])
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'review.respond'") == 0


def test_team_filters_round_trip_and_select_by_status(filled):
    store, info = filled
    f = rv.QueueFilter(assigned_to="ann", team_status="conflict")
    assert rv.QueueFilter.from_dict(f.to_dict()) == f
    with pytest.raises(ShoalError, match="Unknown team status"):
        rv.QueueFilter(team_status="argued")
    rv.assign(store, ["ann", "bob"], per_example=2, seed=9)
    g1, g2 = info["generation_ids"][:2]
    for who, v in (("ann", "accepted"), ("bob", "rejected")):
        rv.decide(store, g1, v, reviewer=who, expected_version=0)
    rv.decide(store, g2, "accepted", reviewer="ann", expected_version=0)
    assert rv.queue_ids(store, rv.QueueFilter(status="any", team_status="conflict")) == [g1]
    assert g2 in rv.queue_ids(store, rv.QueueFilter(status="any", team_status="pending"))
    assert rv.queue_ids(store, rv.QueueFilter(assigned_to="ann", status="any", team_status="conflict")) == [g1]


def test_a_rule_the_judge_left_unanswered_is_neither_yes_nor_no_in_the_filter(filled):
    """A rule the judge gave no answer for is stored as {"answer": "no", "missing": true} (core.generate.items):
    the "says no" filter must not list it, nor the "says yes" one."""
    store, info = filled
    no, yes, unanswered = info["generation_ids"][:3]
    rule = "the rule under test"

    def judge(gid, entry):
        store.execute("INSERT INTO judgments(generation_id, judge_model, rules, overall) VALUES (?, 'j', ?, FALSE)",
                      [gid, json.dumps([{"rule": "another rule", "answer": "yes", "reason": "ok"},
                                        {"rule": rule, **entry}])])

    judge(no, {"answer": "no", "reason": "it does not"})
    judge(yes, {"answer": "yes", "reason": "it does"})
    judge(unanswered, {"answer": "no", "reason": "the judge gave no answer for this rule", "missing": True})
    says_no = rv.QueueFilter(status="any", rule=rule)
    says_yes = says_no.with_(rule_answer="yes")
    assert set(rv.queue_ids(store, says_no)) == {no}
    assert set(rv.queue_ids(store, says_yes)) == {yes}
    assert rv.queue_summary(store, says_no)["in_filter"] == 1
    assert rv.matches(store, says_no, no) and not rv.matches(store, says_no, unanswered)
