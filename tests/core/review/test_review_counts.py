"""Queue counts kept in step (core.review.counts): after every kind of change — decisions by this
reviewer and others, overlap responses, adjudication, undo, bulk actions, new judgments, new
examples, re-assignment — they equal a full `queue_summary`, without a full scan per call."""
from __future__ import annotations

import random

import pytest

from core import review as rv
from core.review.counts import QueueCounts
from tests.support.fake_generations import fill_fake

SORTS = ("judge_failed_first", "random", "cluster", "newest")


@pytest.fixture
def filled(store):
    fill_fake(store, 150, seed=11)
    return store


def ids(store):
    return [int(r[0]) for r in store.execute("SELECT id FROM generations ORDER BY id").fetchall()]


def decide(store, gid, verdict, who, **kw):
    return rv.decide(store, gid, verdict, reviewer=who, expected_version=rv.version_for(store, gid, who), **kw)


def same(store, counts: QueueCounts, current_id):
    want = rv.queue_summary(store, counts.filter, counts.sort, counts.seed, current_id)
    assert counts.summary(store, current_id) == want, (counts.filter, counts.sort)


def test_counts_follow_decisions_undo_bulk_and_new_rows_without_rescanning(filled):
    store = filled
    all_ids = ids(store)
    kept = dict(rows_every=0)        # look for new judgments and examples at every call
    queues = [QueueCounts(rv.QueueFilter(), s, 3, **kept) for s in SORTS] + [
        QueueCounts(rv.QueueFilter(judge="failed"), "judge_failed_first", 0, **kept),
        QueueCounts(rv.QueueFilter(status="any", tasks=("code_generation", "code_repair")), "oldest", 0, **kept),
        QueueCounts(rv.QueueFilter(status="accepted", reviewer="ann"), "newest", 0, **kept),   # the scope moves
        QueueCounts(rv.QueueFilter(status="edited"), "oldest", 0, **kept),
    ]
    rnd = random.Random(4)
    for q in queues:
        same(store, q, all_ids[5])
    for step in range(12):
        gid = rnd.choice(all_ids)
        who = rnd.choice(["ann", "bob"])
        verdict = rnd.choice(["accepted", "rejected", "skipped"])
        edited = {"instruction": f"edited {step}"} if step % 4 == 0 and verdict == "accepted" else None
        try:
            decide(store, gid, verdict, who, edited_fields=edited)
        except rv.StaleReview:
            pass
        for q in queues:
            same(store, q, gid)
    rv.undo_last(store, "ann")
    res = rv.bulk_decide(store, rv.QueueFilter(tasks=("code_summarization",)), "accepted", reviewer="cy")
    assert res.changed > 0
    for q in queues:
        same(store, q, all_ids[40])
    rv.undo_action(store, res.batch_id, reviewer="cy")
    # a judge run re-judges an example nobody touched (its sort key moves) and a job adds one
    untouched = int(store.scalar("SELECT min(id) FROM generations WHERE task <> 'code_summarization' AND CAST(id AS "
                                 "VARCHAR) NOT IN (SELECT entity_id FROM audit_log WHERE entity_id IS NOT NULL)"))
    store.execute("INSERT INTO judgments(generation_id, judge_model, rules, overall) "
                  "VALUES (?, 'j2', '[]', NOT coalesce((SELECT overall FROM latest_judgments WHERE generation_id = ?), TRUE))",
                  [untouched, untouched])
    store.execute("INSERT INTO generations(snippet_id, task, fields, parse_ok) SELECT snippet_id, task, fields, TRUE "
                  "FROM generations WHERE id = ?", [all_ids[9]])
    for q in queues:
        same(store, q, untouched)
        assert q.full_scans == 1, q.filter          # all of that without a second scan


def test_assigned_queue_counts_follow_other_reviewers_and_rescan_after_reassignment(filled):
    store = filled
    rv.assign(store, ["a", "b"], per_example=2, overlap_share=0.5, seed=2)
    mine = QueueCounts(rv.QueueFilter(assigned_to="a"), "judge_failed_first", 0)
    a_ids = rv.queue_ids(store, mine.filter)
    both = [g for g in a_ids if rv.is_overlap(store, g)]
    same(store, mine, a_ids[0])
    decide(store, both[0], "accepted", "b")        # theirs first: pending
    decide(store, both[0], "accepted", "a")        # agreed: a verdict in my queue's counts
    decide(store, both[1], "accepted", "a")
    decide(store, both[1], "rejected", "b")        # conflict ...
    same(store, mine, both[1])
    rv.adjudicate(store, both[1], "rejected", adjudicator="owner")   # ... resolved
    single = next(g for g in a_ids if not rv.is_overlap(store, g))
    decide(store, single, "rejected", "a")
    same(store, mine, single)
    assert mine.full_scans == 1
    rv.assign(store, ["a", "b"], per_example=1, reset_open=True, seed=5)   # re-dealt: a new scope
    same(store, mine, a_ids[0])
    assert mine.full_scans == 2


def test_decisions_outside_an_assigned_queue_are_not_read_again(filled, monkeypatch):
    """A reviewer's kept queue re-reads only its own rows: another reviewer's decisions on examples
    outside it cannot change it (its scope does not follow the reviews), so they cost no lookup."""
    store = filled
    rv.assign(store, ["a", "b"], per_example=1, seed=3)
    mine = QueueCounts(rv.QueueFilter(assigned_to="a"), "judge_failed_first", 0)
    a_ids = rv.queue_ids(store, mine.filter)
    b_ids = rv.queue_ids(store, rv.QueueFilter(assigned_to="b"))
    same(store, mine, a_ids[0])
    reloaded: list = []
    real = QueueCounts.reload
    monkeypatch.setattr(QueueCounts, "reload", lambda self, st, gids, judged=None: (reloaded.append(set(gids)),
                                                                                    real(self, st, gids, judged)))
    for g in b_ids[:3]:
        decide(store, g, "accepted", "b")
    same(store, mine, a_ids[0])
    assert reloaded == []
    decide(store, a_ids[1], "rejected", "a")
    same(store, mine, a_ids[1])
    assert reloaded == [{a_ids[1]}] and mine.full_scans == 1
    # a filter whose scope follows the reviews still reads them
    theirs = QueueCounts(rv.QueueFilter(status="any", reviewer="b"), "oldest", 0)
    same(store, theirs, b_ids[0])
    decide(store, b_ids[5], "rejected", "b")
    same(store, theirs, b_ids[5])
    assert theirs.full_scans == 1


def test_cursor_summary_is_the_queue_summary_and_positions_follow_the_walk(filled):
    store = filled
    f = rv.QueueFilter(tasks=("code_translation", "oss_instruct"))
    cur = rv.QueueCursor(f, "judge_failed_first", 0, window=4)
    gid = cur.next_after(store, None)
    positions = []
    for _ in range(6):
        positions.append(cur.summary(store, gid)["position"])
        assert cur.summary(store, gid) == rv.queue_summary(store, f, "judge_failed_first", 0, gid)
        decide(store, gid, "accepted", "ann")
        assert cur.summary(store, gid)["position"] is None        # accepted: out of the to-do list
        gid = cur.next_after(store, gid)
    assert positions == [1] * 6                                    # the to-do list moves up under you
    assert cur.counts.full_scans == 1


def test_a_queue_too_big_to_keep_is_counted_by_sql(filled, monkeypatch):
    import core.review.counts as counts
    store = filled
    monkeypatch.setattr(counts, "MAX_ROWS", 10)
    q = QueueCounts(rv.QueueFilter(), "oldest", 0)
    first = ids(store)[0]
    same(store, q, first)
    assert q._too_big and len(ids(store)) > 10          # not kept: counted by SQL each time
    decide(store, first, "accepted", "ann")
    same(store, q, first)


def test_new_examples_show_within_rows_every_and_anything_else_within_ttl(filled):
    import time
    store = filled
    q = QueueCounts(rv.QueueFilter(), "oldest", 0, rows_every=0.3, ttl=1.0)
    before = q.summary(store)["in_filter"]
    store.execute("INSERT INTO generations(snippet_id, task, fields, parse_ok) SELECT snippet_id, task, fields, TRUE "
                  "FROM generations ORDER BY id LIMIT 1")
    assert q.summary(store)["in_filter"] == before                 # not looked for yet
    time.sleep(0.35)
    assert q.summary(store)["in_filter"] == before + 1 and q.full_scans == 1
    # a write that bypasses core.review (no audit row) is seen at the next full scan
    gid = ids(store)[0]
    store.execute("INSERT INTO review_records(generation_id, verdict, reviewer, version) VALUES (?, 'accepted', 'x', 1)",
                  [gid])
    assert q.summary(store)["accepted"] == 0
    time.sleep(1.05)
    assert q.summary(store)["accepted"] == 1 and q.full_scans == 2
    same(store, q, gid)
