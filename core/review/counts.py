"""Queue counts: `queue_summary` (one scan), and `QueueCounts`, kept in step rather than
recomputed: one scan when a queue is opened, then only the examples that changed.

`queue_summary` counts a queue with one scan over its scope (a reviewer's assignments, or every
generation): at 100k generations that is tens of milliseconds, too much to pay on every accept
when ten reviewers work at once. `QueueCounts` does that scan once, keeping per example its sort
key and the flags the counts add up (in the filter, to do, accepted, ... judge failed). After
that, each `summary()` asks the database what changed since it last looked — new audit rows name
every example a decision, response, consolidation, adjudication, bulk action or undo touched; new
judgments and generations have ids past the ones seen (looked for every `rows_every` seconds, a
page polls for new examples no faster) — and re-reads only those rows (of a decision, only the
rows it keeps, unless the filter's scope itself follows the reviews: `scope_follows_reviews`). So the
counts and the position are the ones `queue_summary` would give, including other reviewers'
decisions, at the cost of point lookups. A re-assignment (the scope changes), a new map, deleted
generations, many changes at once, or `ttl` seconds without a full scan mean a new full scan.

A queue bigger than `MAX_ROWS` is not kept in memory: its summary is `queue_summary` each time.
"""
from __future__ import annotations

import time

import numpy as np

from core.maps.build import latest_map_id
from core.review.filters import QueueFilter, from_clause, sort_keys, status_condition, todo_condition, where_clause
from core.store import Store

FLAGS = ("in_filter", "todo", "accepted", "rejected", "skipped", "edited", "judge_passed", "judge_failed", "unjudged")
MAX_ROWS = 400_000        # bigger queues are counted by SQL each time (memory per session)
MAX_CHANGED = 2_000       # more changed examples than this since the last look: scan again
RESCOPE_ACTIONS = ("team.assign", "team.remove")   # who is assigned what changed: the scope moves

_FLAG_SQL = ("coalesce(r.verdict = 'accepted', FALSE)", "coalesce(r.verdict = 'rejected', FALSE)",
             "coalesce(r.verdict = 'skipped', FALSE)", "coalesce(r.edited_fields IS NOT NULL, FALSE)",
             "coalesce(j.overall, FALSE)", "coalesce(NOT j.overall, FALSE)", "j.overall IS NULL")


# --------------------------------------------------------------------------- one scan

def sort_key_of(store: Store, f: QueueFilter, sort: str, seed: int, generation_id: int) -> tuple | None:
    """(k1, k2) of one example in this queue's order (a point lookup); None when it is not in the FROM."""
    frm, _ = from_clause(store, f, sort, judgment=False, ids=[generation_id])
    k1, k2 = sort_keys(sort, seed)
    return store.execute(f"SELECT {k1}, {k2} {frm} WHERE g.id = ?", [int(generation_id)]).fetchone()


def _position_sql(store: Store, f: QueueFilter, sort: str, seed: int, current_id: int | None) -> tuple[str, list]:
    """SQL (and parameters) for the 1-based place of `current_id` in the queue, NULL when it is not in it."""
    key = sort_key_of(store, f, sort, seed, current_id) if current_id is not None else None
    if key is None or current_id is None:
        return "NULL", []
    wf, pf = where_clause(f)
    k1, k2 = sort_keys(sort, seed)
    before = f"count(*) FILTER (WHERE ({wf}) AND ({k1} < ? OR ({k1} = ? AND {k2} < ?))) + 1"
    return (f"CASE WHEN count(*) FILTER (WHERE ({wf}) AND g.id = ?) > 0 THEN {before} END",
            pf + [int(current_id)] + pf + [key[0], key[0], key[1]])


def queue_summary(store: Store, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0,
                  current_id: int | None = None) -> dict:
    """Counts for the filter in one scan: `in_filter`, and (ignoring the status part of the filter)
    todo/accepted/rejected/skipped/edited and judge passed/failed/unjudged; plus `position`, the
    1-based place of `current_id` in the queue (None when it does not match the filter)."""
    frm, _ = from_clause(store, f, sort)
    where, p = where_clause(f.with_(status="any"))
    wf, pf = where_clause(f)
    todo_p: list = []
    todo = todo_condition(f, todo_p)
    pos_sql, pos_p = _position_sql(store, f, sort, seed, current_id)
    row = store.one(f"""
        SELECT count(*) FILTER (WHERE {wf}) AS in_filter,
               count(*) AS all_status,
               count(*) FILTER (WHERE {todo}) AS todo,
               count(*) FILTER (WHERE r.verdict = 'accepted') AS accepted,
               count(*) FILTER (WHERE r.verdict = 'rejected') AS rejected,
               count(*) FILTER (WHERE r.verdict = 'skipped') AS skipped,
               count(*) FILTER (WHERE r.edited_fields IS NOT NULL) AS edited,
               count(*) FILTER (WHERE j.overall) AS judge_passed,
               count(*) FILTER (WHERE NOT j.overall) AS judge_failed,
               count(*) FILTER (WHERE j.overall IS NULL) AS unjudged,
               {pos_sql} AS position
        {frm} WHERE {where}""", pf + todo_p + pos_p + p) or {}
    return {k: (None if v is None else int(v)) for k, v in row.items()}


# --------------------------------------------------------------------------- kept in step

REVIEW_FLAGS = 6          # FLAGS[:6] follow the reviews; the judge's three only a new judgment changes


def _rows_sql(store: Store, f: QueueFilter, sort: str, seed: int, ids: list[int] | None = None,
              judge: bool = True) -> tuple[str, list, int | None]:
    """SELECT of (id, k1, k2, *FLAGS) over the queue's scope (the filter with any status), or of
    (id, *FLAGS[:REVIEW_FLAGS]) with `judge=False`; `ids`: only these generations (a point lookup).
    Returns the SQL, its parameters and the map id it was built for.

    Within the scope, "in the filter" is the status condition alone; for the to-do list that is the
    to-do flag itself, selected once (each subquery costs planning time on every point lookup)."""
    frm, map_id = from_clause(store, f, sort if judge else None, judgment=judge, ids=ids)   # no keys: no sort joins
    where, p = where_clause(f.with_(status="any"))
    todo_p: list = []
    todo = f"coalesce(({todo_condition(f, todo_p)}), FALSE)"
    status_p: list = []
    cols = [todo] if f.status == "todo" else [todo, f"coalesce(({status_condition(f, status_p)}), FALSE)"]
    cols += _FLAG_SQL[:4] if not judge else _FLAG_SQL
    names = ["todo", *(["in_filter"] if f.status != "todo" else []), *FLAGS[2:]]
    cols = [f"{c} AS _flag_{n}" for c, n in zip(cols, names)]
    if judge:
        k1, k2 = sort_keys(sort, seed)
        cols = [f"CAST({k1} AS BIGINT) AS _k1", f"CAST({k2} AS BIGINT) AS _k2", *cols]
    return f"SELECT g.id AS _id, {', '.join(cols)}\n{frm} WHERE {where}", todo_p + status_p + p, map_id


def scope_follows_reviews(f: QueueFilter) -> bool:
    """Whether a review or a response can move an example into or out of the queue's scope (the
    filter with any status): only through the reviewer filter, a search (it reads the review's note
    and edits) or the team status. Every other part reads the example, its judgment, the map, a
    selection or the assignments, which decisions do not change."""
    return bool(f.reviewer or (f.search or "").strip() or f.team_status)


def _flags(values, todo_list: bool) -> tuple[bool, ...]:
    """A row's flags in FLAGS order from the SELECT's (todo, [in_filter], ...): for the to-do list
    "in the filter" is the to-do flag."""
    v = [bool(x) for x in values]
    return (v[0], *v) if todo_list else (v[1], v[0], *v[2:])


class QueueCounts:
    """The counts and positions of one queue (filter, sort, seed), kept in step with the database.

    Plain data (numpy arrays and a dict), so a page keeps it in its session; not shared between
    threads."""

    def __init__(self, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0, ttl: float = 300.0,
                 rows_every: float = 2.0):
        self.filter, self.sort, self.seed, self.ttl = f, sort, int(seed), float(ttl)
        self.rows_every = float(rows_every)   # seconds between looks for new examples and judgments
        self._rows_looked = 0.0
        self.full_scans = 0           # how many times the scope was scanned (tests and the bench read it)
        self._scanned_at: float | None = None
        self._too_big = False

    # ------------------------------------------------------------------ public

    def summary(self, store: Store, current_id: int | None = None, sync: bool = True) -> dict:
        """What `queue_summary(store, f, sort, seed, current_id)` returns, from the kept rows
        (`sync=False`: as of the last sync, for a caller that has just synced)."""
        if sync or self._scanned_at is None:
            self.sync(store)
        if self._too_big:
            return queue_summary(store, self.filter, self.sort, self.seed, current_id)
        out: dict[str, int | None] = {"in_filter": int(self._totals[0]), "all_status": int(self._scope)}
        out.update({k: int(v) for k, v in zip(FLAGS[1:], self._totals[1:])})
        out["position"] = self.position(current_id)
        return out

    def position(self, gid: int | None) -> int | None:
        """1-based place of `gid` in the queue; None when it is not in the filter."""
        row = self._row(gid) if gid is not None else None
        if row is None or not row[2][0]:
            return None
        a, b = row[0], row[1]
        keep = self._live & self._flags[0]
        before = keep & ((self._k1 < a) | ((self._k1 == a) & (self._k2 < b)))
        n = int(np.count_nonzero(before))
        n += sum(1 for r in self._over.values() if r is not None and r[2][0] and (r[0], r[1]) < (a, b))
        return n + 1

    def kept(self) -> bool:
        """Whether the rows are kept (scanned, and not too many)."""
        return self._scanned_at is not None and not self._too_big

    def key_of(self, gid: int) -> tuple[int, int] | None:
        """The sort key of a kept example in the scope; None when it is not in it."""
        row = self._row(int(gid))
        return None if row is None else (row[0], row[1])

    def in_filter(self, gid: int) -> bool:
        row = self._row(int(gid))
        return row is not None and row[2][0]

    def first_after(self, key: tuple[int, int] | None) -> int | None:
        """The first example in the filter after `key` in queue order (from the top when None)."""
        mask = self._live & self._flags[0]
        if key is not None:
            a, b = key
            mask &= (self._k1 > a) | ((self._k1 == a) & (self._k2 > b))
        best = None
        idx = np.flatnonzero(mask)
        if len(idx):
            k1 = self._k1[idx]
            idx = idx[k1 == k1.min()]
            i = idx[np.argmin(self._k2[idx])]
            best = (int(self._k1[i]), int(self._k2[i]), int(self._ids[i]))
        for gid, r in self._over.items():
            if r is not None and r[2][0] and (key is None or (r[0], r[1]) > key) \
                    and (best is None or (r[0], r[1]) < best[:2]):
                best = (r[0], r[1], gid)
        return None if best is None else best[2]

    def sync(self, store: Store) -> None:
        """Bring the kept rows in line with the database (a full scan only when needed)."""
        now = time.monotonic()
        if self._scanned_at is None or now - self._scanned_at > self.ttl:
            self.scan(store)
            return
        if self._too_big:
            return
        changed = self._changed_since(store)
        if changed is None:
            self.scan(store)
            return
        gids, judged = changed
        if not scope_follows_reviews(self.filter):
            # a decision elsewhere cannot bring an example into this scope: only kept rows can change
            gids = {g for g in gids if g in judged or self._row(g) is not None}
        if gids:
            self.reload(store, gids, judged)

    def scan(self, store: Store) -> None:
        """Read every row of the scope (and note where the database's change logs stand)."""
        self.full_scans += 1
        self._scanned_at = self._rows_looked = time.monotonic()
        self._marks = self._probe(store)           # before the scan: anything after it is re-read
        sql, params, map_id = _rows_sql(store, self.filter, self.sort, self.seed)
        self._map_id = map_id
        self._fixed = self.filter if map_id is None else self.filter.with_(map_id=map_id)   # reloads: same map
        n = int(store.scalar(f"SELECT count(*) FROM ({sql})", params))
        self._too_big = n > MAX_ROWS
        if self._too_big:
            return
        cols = store.execute(sql + " ORDER BY g.id", params).fetchnumpy()
        names = list(cols)
        self._ids = np.asarray(cols[names[0]], dtype=np.int64)
        self._k1 = np.asarray(cols[names[1]], dtype=np.int64)
        self._k2 = np.asarray(cols[names[2]], dtype=np.int64)
        flags = [np.asarray(cols[c], dtype=bool) for c in names[3:]]
        flags = [flags[0], *flags] if self.filter.status == "todo" else [flags[1], flags[0], *flags[2:]]
        self._flags = np.vstack(flags) if len(self._ids) else np.zeros((len(FLAGS), 0), dtype=bool)
        self._live = np.ones(len(self._ids), dtype=bool)
        self._over: dict[int, tuple | None] = {}
        self._totals = self._flags.sum(axis=1).astype(np.int64)
        self._scope = len(self._ids)

    def reload(self, store: Store, gids: set[int] | list[int], judged: set[int] | None = None) -> None:
        """Re-read these examples' rows and adjust the counts. A kept row whose judgment did not
        change (not in `judged`) keeps its sort key and judge flags: only its review flags are
        read, without the judgment view."""
        gids = sorted({int(g) for g in gids})
        judged = set(gids) if judged is None else judged
        light = [g for g in gids if g not in judged and self._row(g) is not None]
        full = [g for g in gids if g in judged or self._row(g) is None]
        for chunk in _chunks(light):
            sql, params, _ = _rows_sql(store, self._fixed, self.sort, self.seed, chunk, judge=False)
            flags = {int(r[0]): _flags(r[1:], self.filter.status == "todo") for r in store.execute(sql, params).fetchall()}
            for gid in chunk:
                old = self._row(gid)
                assert old is not None            # `light` holds kept rows only
                self._replace(gid, None if gid not in flags else (old[0], old[1], flags[gid] + old[2][REVIEW_FLAGS:]))
        for chunk in _chunks(full):
            sql, params, _ = _rows_sql(store, self._fixed, self.sort, self.seed, chunk)
            rows = {int(r[0]): (int(r[1]), int(r[2]), _flags(r[3:], self.filter.status == "todo"))
                    for r in store.execute(sql, params).fetchall()}
            for gid in chunk:
                self._replace(gid, rows.get(gid))

    # ------------------------------------------------------------------ rows

    def _index(self, gid: int) -> int | None:
        i = int(np.searchsorted(self._ids, gid))
        return i if i < len(self._ids) and self._ids[i] == gid else None

    def _row(self, gid: int) -> tuple | None:
        """(k1, k2, flags) of an example in the scope, None when it is not in it."""
        if gid in self._over:
            return self._over[gid]
        i = self._index(gid)
        if i is None:
            return None
        return int(self._k1[i]), int(self._k2[i]), tuple(bool(x) for x in self._flags[:, i])

    def _replace(self, gid: int, new: tuple | None) -> None:
        old = self._row(gid)
        if old is not None:
            self._totals -= np.asarray(old[2], dtype=np.int64)
            self._scope -= 1
        if new is not None:
            self._totals += np.asarray(new[2], dtype=np.int64)
            self._scope += 1
        i = self._index(gid)
        if i is not None:
            self._live[i] = False
        self._over[gid] = new

    # ------------------------------------------------------------------ what changed

    def _probe(self, store: Store) -> dict:
        row = store.execute("""SELECT (SELECT coalesce(max(id), 0) FROM audit_log),
                                      (SELECT coalesce(max(id), 0) FROM generations),
                                      (SELECT count(*) FROM generations),
                                      (SELECT coalesce(max(id), 0) FROM judgments)""").fetchone()
        return {"audit": int(row[0]), "generation": int(row[1]), "generations": int(row[2]),
                "judgment": int(row[3]), "map": latest_map_id(store)}

    def _changed_since(self, store: Store) -> tuple[set[int], set[int]] | None:
        """(examples changed since the last look, those of them with a new judgment or new);
        None when only a full scan can tell."""
        m = self._marks
        audit = store.execute("SELECT id, action, entity, TRY_CAST(entity_id AS BIGINT) FROM audit_log WHERE id > ? "
                              "ORDER BY id", [m["audit"]]).fetchall()
        if self._map_id is not None or self.sort == "cluster" or self.filter.clusters:
            if latest_map_id(store) != m["map"]:
                return None
        changed: set[int] = set()
        judged: set[int] = set()
        for _, action, entity, gid in audit:
            if action in RESCOPE_ACTIONS:
                return None
            if entity in ("review", "response") and gid is not None:
                changed.add(int(gid))
        if audit:
            m["audit"] = int(audit[-1][0])
        now = time.monotonic()
        if now - self._rows_looked >= self.rows_every:      # new examples and judgments
            self._rows_looked = now
            row = store.execute("""SELECT (SELECT coalesce(max(id), 0) FROM generations), (SELECT count(*) FROM generations),
                                          (SELECT coalesce(max(id), 0) FROM judgments)""").fetchone()
            max_gen, n_gen, max_judgment = (int(x) for x in row)
            if max_gen != m["generation"] or n_gen != m["generations"]:
                new = [int(r[0]) for r in store.execute("SELECT id FROM generations WHERE id > ?",
                                                        [m["generation"]]).fetchall()]
                if n_gen - m["generations"] != len(new):          # some were deleted
                    return None
                judged.update(new)
            if max_judgment != m["judgment"]:
                judged.update(int(r[0]) for r in store.execute(
                    "SELECT DISTINCT generation_id FROM judgments WHERE id > ?", [m["judgment"]]).fetchall())
            m.update(generation=max_gen, generations=n_gen, judgment=max_judgment)
        changed |= judged
        if len(changed) > MAX_CHANGED:
            return None
        return changed, judged


def _chunks(ids: list[int], size: int = 500):
    for i in range(0, len(ids), size):
        yield ids[i:i + size]
