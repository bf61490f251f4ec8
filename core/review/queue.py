"""The review queue: pages, keyset windows and the cursor (its counts: core.review.counts).

The page asks for one example at a time (keyset on the sort key), never loads the queue.
"""
from __future__ import annotations

import time

import pandas as pd

from core.maps.build import latest_map_id
from core.review.counts import QueueCounts, queue_summary, sort_key_of  # noqa: F401 (queue_summary: re-exported)
from core.review.filters import QueueFilter, from_clause, sort_keys, where_clause
from core.store import Store


def queue_count(store: Store, f: QueueFilter) -> int:
    frm, _ = from_clause(store, f, judgment=False)
    where, p = where_clause(f)
    return int(store.scalar(f"SELECT count(*) {frm} WHERE {where}", p))


def queue_page(store: Store, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0,
               limit: int = 50, offset: int = 0) -> pd.DataFrame:
    """One page of the queue as a DataFrame (for the list view and the CLI)."""
    frm, map_id = from_clause(store, f, sort)
    where, p = where_clause(f)
    k1, k2 = sort_keys(sort, seed)
    return store.df(f"""
        WITH q AS (SELECT g.id, {k1} AS k1, {k2} AS k2 {frm} WHERE {where} ORDER BY k1, k2 LIMIT ? OFFSET ?)
        SELECT g.id, g.task, s.language, g.target_language, mp.cluster, j.overall AS judge_overall,
               r.verdict, r.reviewer, g.created_at
        FROM q JOIN generations g ON g.id = q.id
        LEFT JOIN snippets s ON s.id = g.snippet_id
        LEFT JOIN latest_judgments j ON j.generation_id = g.id
        LEFT JOIN reviews r ON r.generation_id = g.id
        LEFT JOIN map_points mp ON mp.snippet_id = g.snippet_id AND mp.map_id = ?
        ORDER BY q.k1, q.k2""", p + [int(limit), int(offset), map_id if map_id is not None else latest_map_id(store)])


def queue_rows(store: Store, ids: list[int]) -> pd.DataFrame:
    """The queue-list columns (id, task, language, target, judge, verdict, reviewer) of `ids`, in that order."""
    if not ids:
        return pd.DataFrame(columns=["id", "task", "language", "target", "judge", "verdict", "reviewer"])
    ids = [int(i) for i in ids]
    return store.df(f"""
        SELECT g.id, g.task, s.language, g.target_language AS target, j.overall AS judge, r.verdict, r.reviewer
        FROM generations g LEFT JOIN snippets s ON s.id = g.snippet_id
        LEFT JOIN latest_judgments j ON j.generation_id = g.id LEFT JOIN reviews r ON r.generation_id = g.id
        WHERE g.id IN ({", ".join("?" * len(ids))})""", ids).set_index("id").loc[ids].reset_index()


def queue_ids(store: Store, f: QueueFilter) -> list[int]:
    frm, _ = from_clause(store, f, judgment=False)
    where, p = where_clause(f)
    return [r[0] for r in store.execute(f"SELECT g.id {frm} WHERE {where} ORDER BY g.id", p).fetchall()]


def matches(store: Store, f: QueueFilter, generation_id: int) -> bool:
    """Does this example (still) match the filter? A point lookup, cheap at any size."""
    frm, _ = from_clause(store, f, judgment=False, ids=[generation_id])
    where, p = where_clause(f)
    return bool(store.scalar(f"SELECT count(*) {frm} WHERE g.id = ? AND {where}", [int(generation_id)] + p))


def queue_window(store: Store, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0,
                 after_id: int | None = None, direction: int = 1, limit: int = 50) -> list[int]:
    """The next `limit` examples after `after_id` in queue order (direction=-1: the previous ones,
    nearest first). Keyset on the sort key, so no OFFSET scans; `after_id` need not match the
    filter any more (e.g. it was just accepted while the filter shows the to-do list)."""
    frm, _ = from_clause(store, f, sort, judgment=False)
    where, p = where_clause(f)
    k1, k2 = sort_keys(sort, seed)
    order = "ASC" if direction > 0 else "DESC"
    cmp = ">" if direction > 0 else "<"
    extra, extra_p = "", []
    if after_id is not None:
        key = sort_key_of(store, f, sort, seed, after_id)
        if key is not None:
            extra = f" AND ({k1} {cmp} ? OR ({k1} = ? AND {k2} {cmp} ?))"
            extra_p = [key[0], key[0], key[1]]
    rows = store.execute(
        f"SELECT g.id {frm} WHERE {where}{extra} ORDER BY {k1} {order}, {k2} {order} LIMIT ?",
        p + extra_p + [int(limit)]).fetchall()
    return [int(r[0]) for r in rows]


def neighbour(store: Store, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0,
              after_id: int | None = None, direction: int = 1) -> int | None:
    """The next (1) or previous (-1) example relative to `after_id`; None at the end of the queue."""
    ids = queue_window(store, f, sort, seed, after_id, direction, limit=1)
    return ids[0] if ids else None


def first_in_queue(store: Store, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0) -> int | None:
    return neighbour(store, f, sort, seed, None, 1)


class QueueCursor:
    """Walks the queue: "next" costs point lookups, not a scan.

    It keeps the queue's rows (core.review.counts: scanned once, then kept in step with what
    changed), so "next" is the next kept row in queue order and `summary` the queue's counts and
    position. A queue too big to keep is walked with a prefetched keyset window instead. Plain
    data, so a page can keep it in its session. Every candidate is checked against the database
    before it is shown — the kept rows are brought up to date from its change logs first, else
    with a point lookup — so decisions made elsewhere are respected.
    """

    def __init__(self, f: QueueFilter, sort: str, seed: int, window: int = 40):
        self.filter, self.sort, self.seed, self.window = f, sort, seed, window
        self._ahead: list[int] = []       # prefetched ids after the anchor, in queue order
        self._anchor: int | None = None   # the id last returned (or the window was fetched after)
        self._tail: int | None = None     # last id fetched, where the next window starts
        self._exhausted = False
        self.counts = QueueCounts(f, sort, seed)
        self._moved: tuple[int | None, float] | None = None   # (id next_after returned, when)

    def summary(self, store: Store, current_id: int | None = None) -> dict:
        """`queue_summary` of this queue with `current_id`'s position, without a scan per call.
        Right after `next_after` returned `current_id` the rows it just synced are used as they are."""
        fresh = self._moved is not None and self._moved[0] == current_id and time.monotonic() - self._moved[1] < 1.0
        self._moved = None
        return self.counts.summary(store, current_id, sync=not fresh)

    def same_queue(self, f: QueueFilter, sort: str, seed: int) -> bool:
        return (self.filter, self.sort, self.seed) == (f, sort, seed)

    def next_after(self, store: Store, current_id: int | None) -> int | None:
        """The first example after `current_id` that still matches the filter (None: end of queue)."""
        self.counts.sync(store)
        if self.counts.kept():
            gid = self._next_kept(store, current_id)
            self._moved = (gid, time.monotonic())
            return gid
        if current_id is None:
            self._fetch(store, None)
        elif current_id in self._ahead:
            self._ahead = self._ahead[self._ahead.index(current_id) + 1:]
        elif current_id != self._anchor:
            self._fetch(store, current_id)
        while True:
            while self._ahead:
                gid = self._ahead.pop(0)
                if matches(store, self.filter, gid):
                    self._anchor = gid
                    return gid
            if self._exhausted:
                return None
            self._fetch(store, self._tail)

    def _next_kept(self, store: Store, current_id: int | None) -> int | None:
        counts = self.counts
        key = None
        if current_id is not None:   # an example outside the scope: from where it would sit
            key = counts.key_of(current_id) or sort_key_of(store, self.filter, self.sort, self.seed, current_id)
        self._anchor = counts.first_after(key)     # the rows were synced just now
        return self._anchor

    def _fetch(self, store: Store, after_id: int | None) -> None:
        ids = queue_window(store, self.filter, self.sort, self.seed, after_id, 1, self.window)
        self._ahead, self._anchor = ids, after_id
        self._tail = ids[-1] if ids else after_id
        self._exhausted = len(ids) < self.window
