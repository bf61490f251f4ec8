"""Human review: the queue, verdicts and edits, undo, bulk actions, audit trail, judge–human agreement.

Everything is SQL over the store, so the queue stays fast with 100k generations:
the page asks for one example at a time (keyset on the sort key), never loads the queue.

Concurrency: every review row carries a `version`. A save names the version it was based on
(`expected_version`, 0 = "no review yet"); if the row changed since, `StaleReview` is raised and
nothing is written. Versions only grow per generation (undo included), so an old tab can never
save over a newer verdict. Every change writes `audit_log` rows (who, when, before, after); one
user action (a single verdict or a bulk action) shares one `batch_id` and is undone as a unit.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable

from core.errors import ShoalError
from core.store import Store

VERDICTS = ("accepted", "rejected", "skipped")
JUDGE_CHOICES = ("any", "passed", "failed", "unjudged")
STATUS_CHOICES = ("todo", "any", "unreviewed", "reviewed", "accepted", "rejected", "skipped", "edited")
SORTS = {
    "judge_failed_first": "Judge-failed first",
    "random": "Random (seeded)",
    "cluster": "By cluster",
    "newest": "Newest first",
    "oldest": "Oldest first",
}
QUICK_REASONS = (
    "wrong or incomplete solution", "instruction unclear", "not specific to the input",
    "prose outside the code", "missing imports", "trivial", "duplicate", "unsafe or leaks data",
)
# Audit actions that are user decisions (undoable) and their undo marker.
DECISION_ACTIONS = ("review.decide", "review.bulk")
UNDO_MARKER = "review.undo_batch"


class StaleReview(ShoalError):
    """A save based on an old version of a review: refused, nothing written."""

    def __init__(self, generation_id: int, current: dict | None, expected_version: int):
        self.generation_id, self.current, self.expected_version = generation_id, current, expected_version
        if current:
            who = (f"{current.get('reviewer') or 'someone'} marked it {current['verdict']}"
                   f" at {str(current.get('updated_at') or '')[:19]} (version {current['version']})")
        else:
            who = "its verdict was removed (undone)"
        super().__init__(
            f"Example #{generation_id} changed after you opened it: {who}. "
            "Your change was NOT saved. Reload the example to see the latest version, then decide again.")


class NothingToUndo(ShoalError):
    pass


# --------------------------------------------------------------------------- views (migration)

LATEST_JUDGMENTS_VIEW = """
CREATE OR REPLACE VIEW latest_judgments AS
SELECT j.*,
       CASE WHEN json_type(j.rules) = 'ARRAY' THEN
            list_transform(list_filter(CAST(j.rules AS JSON[]),
                                       lambda e: lower(e->>'answer') = 'no'), lambda e: (e->>'rule'))
       END AS failed_rules
FROM judgments j
QUALIFY row_number() OVER (PARTITION BY j.generation_id ORDER BY j.id DESC) = 1
"""

EFFECTIVE_VIEW = """
CREATE OR REPLACE VIEW review_effective AS
SELECT g.id AS generation_id, g.task, g.snippet_id,
       j.overall AS judge_overall,
       r.verdict AS human_verdict, r.reviewer, r.version AS review_version,
       {verdict} AS effective_verdict,
       CASE WHEN r.verdict IN ('accepted', 'rejected') THEN 'human'
            WHEN j.overall IS NOT NULL THEN 'judge' END AS decided_by,
       COALESCE(r.edited_fields, g.fields) AS effective_fields,
       r.edited_fields IS NOT NULL AS edited
FROM generations g
LEFT JOIN latest_judgments j ON j.generation_id = g.id
LEFT JOIN reviews r ON r.generation_id = g.id
"""


def effective_verdict_sql(judgment: str = "j", review: str = "r") -> str:
    """SQL for the verdict that counts: the human's accept/reject, else the judge's overall.

    'accepted' | 'rejected' | NULL (neither judged nor decided). Use it with a LEFT JOIN of
    `latest_judgments` AS judgment and `reviews` AS review — or just query the `review_effective` view.
    """
    return (f"CASE WHEN {review}.verdict IN ('accepted', 'rejected') THEN {review}.verdict "
            f"WHEN {judgment}.overall THEN 'accepted' "
            f"WHEN NOT {judgment}.overall THEN 'rejected' END")


def create_review_views(con) -> None:
    """Migration body: views every stage uses for 'what counts' (human over judge)."""
    con.execute(LATEST_JUDGMENTS_VIEW)
    con.execute(EFFECTIVE_VIEW.format(verdict=effective_verdict_sql()))
    con.execute("CREATE INDEX IF NOT EXISTS idx_audit_entity ON audit_log(entity_id)")


# --------------------------------------------------------------------------- queue

@dataclass(frozen=True)
class QueueFilter:
    """What the reviewer is looking at. Empty tuples / 'any' / None mean no restriction."""
    tasks: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()          # snippet language or translation target
    clusters: tuple[int, ...] = ()           # clusters of `map_id` (default: the latest map)
    map_id: int | None = None
    selection_id: int | None = None
    judge: str = "any"                       # any | passed | failed | unjudged
    rule: str | None = None                  # a judge rule ...
    rule_answer: str = "no"                  # ... answered yes / no
    status: str = "todo"                     # see STATUS_CHOICES; todo = not accepted/rejected
    reviewer: str | None = None
    search: str = ""

    def __post_init__(self):
        if self.judge not in JUDGE_CHOICES:
            raise ShoalError(f"Unknown judge filter {self.judge!r}; use one of {', '.join(JUDGE_CHOICES)}.")
        if self.status not in STATUS_CHOICES:
            raise ShoalError(f"Unknown status filter {self.status!r}; use one of {', '.join(STATUS_CHOICES)}.")
        if self.rule_answer not in ("yes", "no"):
            raise ShoalError("rule_answer must be 'yes' or 'no'.")

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("tasks", "languages", "clusters"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> "QueueFilter":
        d = dict(d or {})
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        for k in ("tasks", "languages"):
            d[k] = tuple(str(x) for x in d.get(k) or ())
        d["clusters"] = tuple(int(x) for x in d.get("clusters") or ())
        return cls(**d)

    def with_(self, **changes) -> "QueueFilter":
        return replace(self, **changes)


def latest_map_id(store: Store) -> int | None:
    return store.scalar("SELECT max(id) FROM maps WHERE coalesce(status, 'done') = 'done'")


def _from(store: Store, f: QueueFilter, sort: str | None = None) -> tuple[str, int | None]:
    """FROM clause joining only what the filter and sort need (each join costs a scan at 100k)."""
    parts = ["FROM generations g",
             "LEFT JOIN latest_judgments j ON j.generation_id = g.id",
             "LEFT JOIN reviews r ON r.generation_id = g.id"]
    if f.languages or (f.search or "").strip():
        parts.append("LEFT JOIN snippets s ON s.id = g.snippet_id")
    map_id = None
    if f.clusters or sort == "cluster":
        map_id = f.map_id if f.map_id is not None else latest_map_id(store)
        parts.append("LEFT JOIN map_points mp ON mp.snippet_id = g.snippet_id AND mp.map_id = "
                     + (str(int(map_id)) if map_id is not None else "NULL"))
    return "\n".join(parts) + "\n", map_id


def _in(col: str, values: Iterable, params: list) -> str:
    values = list(values)
    params.extend(values)
    return f"{col} IN ({', '.join('?' * len(values))})"


def _where(f: QueueFilter) -> tuple[str, list]:
    """The WHERE clause (without the keyword) and its parameters for a filter."""
    conds, p = ["TRUE"], []
    if f.tasks:
        conds.append(_in("g.task", f.tasks, p))
    if f.languages:
        conds.append(f"({_in('s.language', f.languages, p)} OR {_in('g.target_language', f.languages, p)})")
    if f.clusters:
        conds.append(_in("mp.cluster", f.clusters, p))
    if f.selection_id is not None:
        conds.append("g.snippet_id IN (SELECT snippet_id FROM selection_items WHERE selection_id = ?)")
        p.append(int(f.selection_id))
    conds.append({"any": "TRUE", "passed": "j.overall", "failed": "NOT j.overall",
                  "unjudged": "j.overall IS NULL"}[f.judge])
    if f.rule:
        if f.rule_answer == "no":
            conds.append("list_contains(j.failed_rules, ?)")
        else:  # answered, and not among the failed ones
            conds.append("json_type(j.rules) = 'ARRAY' AND list_contains(json_extract_string(j.rules, '$[*].rule'), ?)"
                         " AND NOT coalesce(list_contains(j.failed_rules, ?), FALSE)")
            p.append(f.rule)
        p.append(f.rule)
    conds.append({
        "any": "TRUE",
        "todo": "(r.verdict IS NULL OR r.verdict = 'skipped')",
        "unreviewed": "r.verdict IS NULL",
        "reviewed": "r.verdict IN ('accepted', 'rejected')",
        "accepted": "r.verdict = 'accepted'",
        "rejected": "r.verdict = 'rejected'",
        "skipped": "r.verdict = 'skipped'",
        "edited": "r.edited_fields IS NOT NULL",
    }[f.status])
    if f.reviewer:
        conds.append("r.reviewer = ?")
        p.append(f.reviewer)
    text = (f.search or "").strip()
    if text:
        if text.startswith("#") and text[1:].isdigit():
            conds.append("g.id = ?")
            p.append(int(text[1:]))
        else:
            # RE2 with (?i) is ~5x faster than ILIKE on JSON text in DuckDB
            pattern = "(?i)" + re.escape(text)
            conds.append("(regexp_matches(CAST(g.fields AS VARCHAR), ?) OR regexp_matches(s.code, ?)"
                         " OR regexp_matches(coalesce(r.note, ''), ?)"
                         " OR regexp_matches(coalesce(CAST(r.edited_fields AS VARCHAR), ''), ?)"
                         " OR regexp_matches(coalesce(s.func_name, ''), ?))")
            p.extend([pattern] * 5)
    return " AND ".join(conds), p


def _sort_keys(sort: str, seed: int) -> tuple[str, str]:
    """(k1, k2) expressions; the queue is ordered by k1, then k2 (both ascending, k2 unique)."""
    if sort == "judge_failed_first":
        return "(CASE WHEN j.overall = FALSE THEN 0 WHEN j.overall IS NULL THEN 1 ELSE 2 END)", "g.id"
    if sort == "random":
        return f"CAST(hash(g.id, {int(seed)}) >> 1 AS BIGINT)", "g.id"
    if sort == "cluster":
        return "coalesce(mp.cluster, 2147483647)", "g.id"
    if sort == "newest":
        return "(g.id * 0)", "-g.id"
    if sort == "oldest":
        return "(g.id * 0)", "g.id"
    raise ShoalError(f"Unknown sort {sort!r}; use one of {', '.join(SORTS)}.")


def queue_summary(store: Store, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0,
                  current_id: int | None = None) -> dict:
    """Counts for the filter in one scan: `in_filter`, and (ignoring the status part of the filter)
    todo/accepted/rejected/skipped/edited and judge passed/failed/unjudged; plus `position`, the
    1-based place of `current_id` in the queue (None when it does not match the filter)."""
    frm, _ = _from(store, f, sort)
    where, p = _where(f.with_(status="any"))
    wf, pf = _where(f)
    k1, k2 = _sort_keys(sort, seed)
    pos_sql, pos_p = "NULL", []
    key = _key_of(store, f, sort, seed, current_id) if current_id is not None else None
    if key is not None:
        pos_sql = (f"count(*) FILTER (WHERE ({wf}) AND ({k1} < ? OR ({k1} = ? AND {k2} < ?))) + 1")
        pos_p = pf + [key[0], key[0], key[1]]
        pos_sql = f"CASE WHEN count(*) FILTER (WHERE ({wf}) AND g.id = ?) > 0 THEN {pos_sql} END"
        pos_p = pf + [int(current_id)] + pos_p
    row = store.one(f"""
        SELECT count(*) FILTER (WHERE {wf}) AS in_filter,
               count(*) AS all_status,
               count(*) FILTER (WHERE r.verdict IS NULL OR r.verdict = 'skipped') AS todo,
               count(*) FILTER (WHERE r.verdict = 'accepted') AS accepted,
               count(*) FILTER (WHERE r.verdict = 'rejected') AS rejected,
               count(*) FILTER (WHERE r.verdict = 'skipped') AS skipped,
               count(*) FILTER (WHERE r.edited_fields IS NOT NULL) AS edited,
               count(*) FILTER (WHERE j.overall) AS judge_passed,
               count(*) FILTER (WHERE NOT j.overall) AS judge_failed,
               count(*) FILTER (WHERE j.overall IS NULL) AS unjudged,
               {pos_sql} AS position
        {frm} WHERE {where}""", pf + pos_p + p)
    return {k: (None if v is None else int(v)) for k, v in row.items()}


def queue_count(store: Store, f: QueueFilter) -> int:
    frm, _ = _from(store, f)
    where, p = _where(f)
    return int(store.scalar(f"SELECT count(*) {frm} WHERE {where}", p))


def queue_page(store: Store, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0,
               limit: int = 50, offset: int = 0):
    """One page of the queue as a DataFrame (for the list view and the CLI)."""
    frm, map_id = _from(store, f, sort)
    where, p = _where(f)
    k1, k2 = _sort_keys(sort, seed)
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


def queue_ids(store: Store, f: QueueFilter) -> list[int]:
    frm, _ = _from(store, f)
    where, p = _where(f)
    return [r[0] for r in store.execute(f"SELECT g.id {frm} WHERE {where} ORDER BY g.id", p).fetchall()]


def _key_of(store: Store, f: QueueFilter, sort: str, seed: int, generation_id: int):
    frm, _ = _from(store, f, sort)
    k1, k2 = _sort_keys(sort, seed)
    return store.execute(f"SELECT {k1}, {k2} {frm} WHERE g.id = ?", [int(generation_id)]).fetchone()


def matches(store: Store, f: QueueFilter, generation_id: int) -> bool:
    """Does this example (still) match the filter? A point lookup, cheap at any size."""
    frm, _ = _from(store, f)
    where, p = _where(f)
    return bool(store.scalar(f"SELECT count(*) {frm} WHERE g.id = ? AND {where}", [int(generation_id)] + p))


def queue_window(store: Store, f: QueueFilter, sort: str = "judge_failed_first", seed: int = 0,
                 after_id: int | None = None, direction: int = 1, limit: int = 50) -> list[int]:
    """The next `limit` examples after `after_id` in queue order (direction=-1: the previous ones,
    nearest first). Keyset on the sort key, so no OFFSET scans; `after_id` need not match the
    filter any more (e.g. it was just accepted while the filter shows the to-do list)."""
    frm, _ = _from(store, f, sort)
    where, p = _where(f)
    k1, k2 = _sort_keys(sort, seed)
    order = "ASC" if direction > 0 else "DESC"
    cmp = ">" if direction > 0 else "<"
    extra, extra_p = "", []
    if after_id is not None:
        key = _key_of(store, f, sort, seed, after_id)
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
    """Walks the queue with a prefetched keyset window: "next" costs point lookups, not a scan.

    Plain data (ids and the filter) so a page can keep it in its session; every candidate is
    re-checked against the database before it is shown, so decisions made elsewhere are respected.
    """

    def __init__(self, f: QueueFilter, sort: str, seed: int, window: int = 40):
        self.filter, self.sort, self.seed, self.window = f, sort, seed, window
        self._ahead: list[int] = []       # prefetched ids after the anchor, in queue order
        self._anchor: int | None = None   # the id last returned (or the window was fetched after)
        self._tail: int | None = None     # last id fetched, where the next window starts
        self._exhausted = False

    def same_queue(self, f: QueueFilter, sort: str, seed: int) -> bool:
        return (self.filter, self.sort, self.seed) == (f, sort, seed)

    def next_after(self, store: Store, current_id: int | None) -> int | None:
        """The first example after `current_id` that still matches the filter (None: end of queue)."""
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

    def _fetch(self, store: Store, after_id: int | None) -> None:
        ids = queue_window(store, self.filter, self.sort, self.seed, after_id, 1, self.window)
        self._ahead, self._anchor = ids, after_id
        self._tail = ids[-1] if ids else after_id
        self._exhausted = len(ids) < self.window


# --------------------------------------------------------------------------- one example

def _loads(v: Any) -> Any:
    if v is None or not isinstance(v, str):
        return v
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def get_review(store: Store, generation_id: int) -> dict | None:
    row = store.one("SELECT * FROM reviews WHERE generation_id = ?", [int(generation_id)])
    if row is None:
        return None
    row["reasons"] = _loads(row["reasons"]) or []
    row["edited_fields"] = _loads(row["edited_fields"])
    return row


def get_item(store: Store, generation_id: int) -> dict | None:
    """Everything the review screen shows for one example (point lookups only)."""
    g = store.one("SELECT * FROM generations WHERE id = ?", [int(generation_id)])
    if g is None:
        return None
    g["fields"] = _loads(g["fields"])
    if not isinstance(g["fields"], dict):
        g["fields"] = {"raw": "" if g["fields"] is None else str(g["fields"])}
    g["prefilter_reasons"] = _loads(g.get("prefilter_reasons"))
    snippet = store.one("SELECT * FROM snippets WHERE id = ?", [g["snippet_id"]]) or {}
    judgment = store.one("SELECT * FROM judgments WHERE generation_id = ? ORDER BY id DESC LIMIT 1",
                         [int(generation_id)])
    if judgment is not None:
        rules = _loads(judgment["rules"])
        judgment["rules"] = [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []
    prompt = None
    if g.get("prompt_version_id") is not None:
        prompt = store.one("SELECT id, task, version, note, created_at FROM prompt_versions WHERE id = ?",
                           [g["prompt_version_id"]])
    judge_prompt = None
    if judgment is not None and judgment.get("prompt_version_id") is not None:
        judge_prompt = store.one("SELECT id, task, version FROM prompt_versions WHERE id = ?",
                                 [judgment["prompt_version_id"]])
    map_id = latest_map_id(store)
    cluster = None
    if map_id is not None and snippet:
        cluster = store.one(
            "SELECT mp.cluster, c.label FROM map_points mp LEFT JOIN clusters c "
            "ON c.map_id = mp.map_id AND c.cluster = mp.cluster WHERE mp.map_id = ? AND mp.snippet_id = ?",
            [map_id, snippet["id"]])
    return {"generation": g, "snippet": snippet, "judgment": judgment, "review": get_review(store, generation_id),
            "prompt": prompt, "judge_prompt": judge_prompt, "cluster": cluster}


def current_version(store: Store, generation_id: int) -> int:
    r = store.scalar("SELECT version FROM reviews WHERE generation_id = ?", [int(generation_id)])
    return int(r or 0)


def _review_json(r: dict | None) -> dict | None:
    if r is None:
        return None
    return {"verdict": r["verdict"], "note": r.get("note"), "reasons": _loads(r.get("reasons")) or [],
            "edited_fields": _loads(r.get("edited_fields")), "reviewer": r.get("reviewer"),
            "version": int(r["version"]), "batch_id": r.get("batch_id")}


def _max_version_ever(cur, generation_id: int) -> int:
    """Highest version this generation's review ever had (from the audit log), so versions never repeat."""
    v = cur.execute(
        "SELECT max(greatest(coalesce(TRY_CAST(after->>'version' AS INTEGER), 0),"
        " coalesce(TRY_CAST(before->>'version' AS INTEGER), 0)))"
        " FROM audit_log WHERE entity_id = ? AND entity = 'review'", [str(generation_id)]).fetchone()[0]
    return int(v or 0)


def _clean_edit(original: dict, edited: dict | None) -> dict | None:
    """Validate an edited copy of the fields; None when nothing changed."""
    if edited is None:
        return None
    if not isinstance(edited, dict):
        raise ShoalError("Edited fields must be an object of field name -> text.")
    unknown = set(edited) - set(original)
    if unknown:
        raise ShoalError(f"Cannot edit unknown field(s) {', '.join(sorted(unknown))}; "
                         f"this example has {', '.join(original)}.")
    merged = dict(original)
    for k, v in edited.items():
        if not isinstance(v, str):
            raise ShoalError(f"Field {k!r} must be text.")
        merged[k] = v
    return None if merged == original else merged


def decide(store: Store, generation_id: int, verdict: str, *, reviewer: str, expected_version: int,
           note: str | None = None, reasons: Iterable[str] | None = None,
           edited_fields: dict | None = None) -> dict:
    """Record one human verdict (optionally with edited fields). Written and committed before it
    returns; raises StaleReview if the review is no longer at `expected_version`."""
    if verdict not in VERDICTS:
        raise ShoalError(f"Unknown verdict {verdict!r}; use one of {', '.join(VERDICTS)}.")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ShoalError("Set a reviewer name first (sidebar, or --reviewer on the command line).")
    gid = int(generation_id)
    gen = store.one("SELECT fields FROM generations WHERE id = ?", [gid])
    if gen is None:
        raise ShoalError(f"There is no generated example #{gid}.")
    original = _loads(gen["fields"])
    original = original if isinstance(original, dict) else {}
    batch_id = uuid.uuid4().hex
    with store._write_lock, store.transaction() as cur:
        cur_row = cur.execute("SELECT * FROM reviews WHERE generation_id = ?", [gid]).fetchone()
        current = None
        if cur_row is not None:
            current = dict(zip([d[0] for d in cur.description], cur_row))
        if (current["version"] if current else 0) != int(expected_version):
            raise StaleReview(gid, current, int(expected_version))
        edited = _clean_edit(original, edited_fields) if edited_fields is not None else (
            _loads(current["edited_fields"]) if current else None)
        version = max(current["version"] if current else 0, _max_version_ever(cur, gid)) + 1
        reasons = [str(x) for x in (reasons or [])]
        note = (note or "").strip() or None
        after = {"verdict": verdict, "note": note, "reasons": reasons, "edited_fields": edited,
                 "reviewer": reviewer, "version": version, "batch_id": None}
        cur.execute(
            "INSERT INTO reviews(generation_id, verdict, note, reasons, edited_fields, reviewer, version, batch_id,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, current_timestamp) "
            "ON CONFLICT (generation_id) DO UPDATE SET verdict = excluded.verdict, note = excluded.note,"
            " reasons = excluded.reasons, edited_fields = excluded.edited_fields, reviewer = excluded.reviewer,"
            " version = excluded.version, batch_id = NULL, updated_at = excluded.updated_at",
            [gid, verdict, note, json.dumps(reasons), None if edited is None else json.dumps(edited),
             reviewer, version])
        cur.execute(
            "INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
            "VALUES (?, 'review.decide', 'review', ?, ?, ?, ?)",
            [reviewer, str(gid), None if current is None else json.dumps(_review_json(current), default=str),
             json.dumps(after), batch_id])
    return {**after, "generation_id": gid, "action_id": batch_id}


# --------------------------------------------------------------------------- bulk

@dataclass
class BulkPreview:
    matching: int          # examples in the filter
    to_change: int         # would get the new verdict
    overriding: int        # of those, already have the other human verdict (only with overwrite)
    already: int           # already have this verdict


def _bulk_scope(f: QueueFilter, verdict: str, overwrite: bool) -> tuple[str, list]:
    where, p = _where(f)
    guard = "r.verdict IS DISTINCT FROM ?"
    if not overwrite:
        guard += " AND (r.verdict IS NULL OR r.verdict = 'skipped')"
    return f"{where} AND {guard}", p + [verdict]


def bulk_preview(store: Store, f: QueueFilter, verdict: str, overwrite: bool = False) -> BulkPreview:
    frm, _ = _from(store, f)
    where, p = _where(f)
    row = store.execute(f"""
        SELECT count(*),
               count(*) FILTER (WHERE r.verdict IS DISTINCT FROM ?
                                AND ({'TRUE' if overwrite else 'FALSE'} OR r.verdict IS NULL OR r.verdict = 'skipped')),
               count(*) FILTER (WHERE r.verdict IN ('accepted', 'rejected') AND r.verdict <> ?),
               count(*) FILTER (WHERE r.verdict = ?)
        {frm} WHERE {where}""", [verdict, verdict, verdict] + p).fetchone()
    return BulkPreview(int(row[0]), int(row[1]), int(row[2]) if overwrite else 0, int(row[3]))


@dataclass
class BulkResult:
    batch_id: str
    changed: int
    verdict: str


def bulk_decide(store: Store, f: QueueFilter, verdict: str, *, reviewer: str, note: str | None = None,
                overwrite: bool = False) -> BulkResult:
    """Give every example matching the filter the verdict, in one transaction, as one undoable action.
    Without `overwrite`, examples that already carry a human accept/reject keep it."""
    if verdict not in ("accepted", "rejected"):
        raise ShoalError("Bulk actions accept or reject.")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ShoalError("Set a reviewer name first (sidebar, or --reviewer on the command line).")
    batch_id = uuid.uuid4().hex
    note = (note or "").strip() or None
    frm, _ = _from(store, f)
    where, p = _bulk_scope(f, verdict, overwrite)
    before_json = ("CASE WHEN r.verdict IS NULL THEN NULL ELSE json_object('verdict', r.verdict, 'note', r.note,"
                   " 'reasons', r.reasons, 'edited_fields', r.edited_fields, 'reviewer', r.reviewer,"
                   " 'version', r.version, 'batch_id', r.batch_id) END")
    with store._write_lock, store.transaction() as cur:
        cur.execute(f"""
            CREATE OR REPLACE TEMP TABLE _bulk AS
            SELECT g.id AS gid, {before_json} AS before, r.edited_fields AS edited, r.version AS old_version
            {frm} WHERE {where}""", p)
        cur.execute("""
            CREATE OR REPLACE TEMP TABLE _bulk_v AS
            SELECT b.*, greatest(coalesce(b.old_version, 0), coalesce(a.v, 0)) + 1 AS new_version
            FROM _bulk b LEFT JOIN (
                SELECT entity_id, max(greatest(coalesce(TRY_CAST(after->>'version' AS INTEGER), 0),
                                              coalesce(TRY_CAST(before->>'version' AS INTEGER), 0))) AS v
                FROM audit_log WHERE entity = 'review' AND entity_id IN (SELECT CAST(gid AS VARCHAR) FROM _bulk)
                GROUP BY 1) a ON a.entity_id = CAST(b.gid AS VARCHAR)""")
        n = int(cur.execute("SELECT count(*) FROM _bulk_v").fetchone()[0])
        if n:
            cur.execute("""
                INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id)
                SELECT ?, 'review.bulk', 'review', CAST(gid AS VARCHAR), before,
                       json_object('verdict', ?, 'note', ?, 'reasons', '[]'::JSON, 'edited_fields', edited,
                                   'reviewer', ?, 'version', new_version, 'batch_id', ?), ?
                FROM _bulk_v ORDER BY gid""", [reviewer, verdict, note, reviewer, batch_id, batch_id])
            cur.execute("""
                INSERT INTO reviews(generation_id, verdict, note, reasons, edited_fields, reviewer, version,
                                    batch_id, updated_at)
                SELECT gid, ?, ?, '[]', edited, ?, new_version, ?, current_timestamp FROM _bulk_v
                ON CONFLICT (generation_id) DO UPDATE SET verdict = excluded.verdict, note = excluded.note,
                    reasons = excluded.reasons, edited_fields = excluded.edited_fields,
                    reviewer = excluded.reviewer, version = excluded.version, batch_id = excluded.batch_id,
                    updated_at = excluded.updated_at""", [verdict, note, reviewer, batch_id])
        cur.execute("DROP TABLE IF EXISTS _bulk")
        cur.execute("DROP TABLE IF EXISTS _bulk_v")
    if n > 1000:
        store.checkpoint()
    return BulkResult(batch_id, n, verdict)


# --------------------------------------------------------------------------- undo

@dataclass
class UndoResult:
    action_id: str
    action: str                      # review.decide | review.bulk
    restored: int
    not_restored: int                # changed again since (left as they are)
    generation_ids: list[int] = field(default_factory=list)


def last_action(store: Store, reviewer: str) -> dict | None:
    """The reviewer's most recent decision or bulk action that has not been undone."""
    return store.one(f"""
        SELECT batch_id AS action_id, any_value(action) AS action, count(*) AS n, max(created_at) AS "at", max(id) AS last_id
        FROM audit_log
        WHERE actor = ? AND action IN {DECISION_ACTIONS} AND batch_id IS NOT NULL
          AND batch_id NOT IN (SELECT entity_id FROM audit_log WHERE action = '{UNDO_MARKER}')
        GROUP BY batch_id ORDER BY last_id DESC LIMIT 1""", [reviewer])


def recent_actions(store: Store, limit: int = 10) -> list[dict]:
    """Recent decisions and bulk actions (anyone), newest first, with whether they were undone."""
    return store.rows(f"""
        SELECT a.batch_id AS action_id, any_value(a.action) AS action, any_value(a.actor) AS reviewer,
               count(*) AS n, max(a.created_at) AS "at", max(a.id) AS last_id,
               any_value(json_extract_string(a.after, '$.verdict')) AS verdict,
               min(a.entity_id) AS first_generation,
               a.batch_id IN (SELECT entity_id FROM audit_log WHERE action = '{UNDO_MARKER}') AS undone
        FROM audit_log a WHERE a.action IN {DECISION_ACTIONS} AND a.batch_id IS NOT NULL
        GROUP BY a.batch_id ORDER BY last_id DESC LIMIT ?""", [int(limit)])


def undo_last(store: Store, reviewer: str) -> UndoResult:
    act = last_action(store, (reviewer or "").strip())
    if act is None:
        raise NothingToUndo(f"Nothing to undo for reviewer {reviewer!r}.")
    return undo_action(store, act["action_id"], reviewer=reviewer)


def undo_action(store: Store, action_id: str, *, reviewer: str) -> UndoResult:
    """Put every review touched by one action back as it was before, as one transaction.
    Reviews changed again since the action are left alone (counted in `not_restored`); for a
    single decision that is refused with StaleReview."""
    undo_id = uuid.uuid4().hex
    with store._write_lock, store.transaction() as cur:
        rows = cur.execute(f"""
            SELECT action, count(*) FROM audit_log WHERE batch_id = ? AND action IN {DECISION_ACTIONS}
            GROUP BY 1""", [action_id]).fetchall()
        if not rows:
            raise NothingToUndo(f"No review action {action_id}.")
        action = rows[0][0]
        if cur.execute(f"SELECT count(*) FROM audit_log WHERE action = '{UNDO_MARKER}' AND entity_id = ?",
                       [action_id]).fetchone()[0]:
            raise NothingToUndo("That action was already undone.")
        cur.execute(f"""
            CREATE OR REPLACE TEMP TABLE _undo AS
            SELECT CAST(a.entity_id AS BIGINT) AS gid, a.before, a.after,
                   CAST((a.after->>'version') AS INTEGER) AS action_version, r.version AS cur_version,
                   -- unchanged since the action: same version, or the same content again (e.g. after
                   -- someone else's change was itself undone)
                   (r.version = CAST((a.after->>'version') AS INTEGER)) OR (
                       r.verdict = (a.after->>'verdict')
                       AND r.reviewer IS NOT DISTINCT FROM (a.after->>'reviewer')
                       AND r.note IS NOT DISTINCT FROM (a.after->>'note')
                       AND coalesce(json(r.edited_fields), 'null') = coalesce(json((a.after->'edited_fields')), 'null'))
                   OR (r.version IS NULL AND a.after IS NULL) AS unchanged
            FROM audit_log a LEFT JOIN reviews r ON r.generation_id = CAST(a.entity_id AS BIGINT)
            WHERE a.batch_id = ? AND a.action IN {DECISION_ACTIONS}""", [action_id])
        total = int(cur.execute("SELECT count(*) FROM _undo").fetchone()[0])
        cur.execute("""
            CREATE OR REPLACE TEMP TABLE _undo_ok AS
            SELECT u.*, greatest(coalesce(u.cur_version, 0), u.action_version, coalesce(m.v, 0)) + 1 AS new_version
            FROM _undo u LEFT JOIN (
                SELECT entity_id, max(greatest(coalesce(TRY_CAST(after->>'version' AS INTEGER), 0),
                                              coalesce(TRY_CAST(before->>'version' AS INTEGER), 0))) AS v
                FROM audit_log WHERE entity = 'review' AND entity_id IN (SELECT CAST(gid AS VARCHAR) FROM _undo)
                GROUP BY 1) m ON m.entity_id = CAST(u.gid AS VARCHAR)
            WHERE coalesce(u.unchanged, FALSE)""")
        ok = int(cur.execute("SELECT count(*) FROM _undo_ok").fetchone()[0])
        if action == "review.decide" and ok < total:
            gid, = cur.execute("SELECT gid FROM _undo").fetchone()
            r = cur.execute("SELECT * FROM reviews WHERE generation_id = ?", [gid]).fetchone()
            current = None if r is None else dict(zip([d[0] for d in cur.description], r))
            expected = cur.execute("SELECT action_version FROM _undo").fetchone()[0]
            raise StaleReview(gid, current, expected)
        # audit first (needs the current rows), then restore
        cur.execute("""
            INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id)
            SELECT ?, 'review.undo', 'review', CAST(gid AS VARCHAR), after,
                   CASE WHEN before IS NULL THEN NULL
                        ELSE json_merge_patch(before, json_object('version', new_version)) END, ?
            FROM _undo_ok ORDER BY gid""", [reviewer, undo_id])
        cur.execute("DELETE FROM reviews WHERE generation_id IN (SELECT gid FROM _undo_ok WHERE before IS NULL)")
        cur.execute("""
            UPDATE reviews SET verdict = (u.before->>'verdict'), note = (u.before->>'note'),
                   reasons = (u.before->'reasons'), edited_fields = CASE WHEN json_type((u.before->'edited_fields')) = 'NULL'
                       THEN NULL ELSE (u.before->'edited_fields') END,
                   reviewer = (u.before->>'reviewer'), version = u.new_version,
                   batch_id = (u.before->>'batch_id'), updated_at = current_timestamp
            FROM _undo_ok u WHERE reviews.generation_id = u.gid AND u.before IS NOT NULL""")
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
                    f"VALUES (?, '{UNDO_MARKER}', 'batch', ?, NULL, ?, ?)",
                    [reviewer, action_id, json.dumps({"restored": ok, "not_restored": total - ok,
                                                      "action": action}), undo_id])
        gids = [int(r[0]) for r in cur.execute("SELECT gid FROM _undo_ok ORDER BY gid").fetchall()]
        cur.execute("DROP TABLE IF EXISTS _undo")
        cur.execute("DROP TABLE IF EXISTS _undo_ok")
    if total > 1000:
        store.checkpoint()
    return UndoResult(action_id, action, ok, total - ok, gids)


def audit_trail(store: Store, generation_id: int) -> list[dict]:
    rows = store.rows("SELECT id, created_at AS \"at\", actor, action, before, after, batch_id FROM audit_log "
                      "WHERE entity = 'review' AND entity_id = ? ORDER BY id", [str(int(generation_id))])
    for r in rows:
        r["before"], r["after"] = _loads(r["before"]), _loads(r["after"])
    return rows


# --------------------------------------------------------------------------- agreement

def kappa_from_counts(tp: int, fn: int, fp: int, tn: int) -> float | None:
    """Cohen's kappa of a 2x2 table (judge yes/no x human accept/reject); None when undefined
    (both raters used one label only, so chance agreement is 1)."""
    n = tp + fn + fp + tn
    if n == 0:
        return None
    po = (tp + tn) / n
    pe = ((tp + fn) * (tp + fp) + (fp + tn) * (fn + tn)) / (n * n)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def _cell_stats(tp: int, fn: int, fp: int, tn: int) -> dict:
    """tp: judge yes & human accepted; fn: judge no & accepted; fp: judge yes & rejected; tn: both no."""
    n = tp + fn + fp + tn
    return {"n": n, "judge_yes_accepted": tp, "judge_no_accepted": fn, "judge_yes_rejected": fp,
            "judge_no_rejected": tn, "agreement": (tp + tn) / n if n else None,
            "kappa": kappa_from_counts(tp, fn, fp, tn)}


def agreement(store: Store, f: QueueFilter | None = None) -> dict:
    """Judge vs human on examples with both a judge verdict and a human accept/reject:
    overall, per task and per rule (a rule's yes/no against the human's accept/reject)."""
    f = (f or QueueFilter()).with_(status="reviewed", judge="any", rule=None)
    frm, _ = _from(store, f)
    where, p = _where(f)
    by_task = store.rows(f"""
        SELECT g.task, j.overall AS judge_yes, r.verdict = 'accepted' AS human_yes, count(*) AS n
        {frm} WHERE {where} AND j.overall IS NOT NULL GROUP BY ALL""", p)
    by_rule = store.rows(f"""
        SELECT (e->>'rule') AS rule, lower(e->>'answer') = 'yes' AS judge_yes, human_yes, count(*) AS n
        FROM (SELECT unnest(CAST(j.rules AS JSON[])) AS e, r.verdict = 'accepted' AS human_yes
              {frm} WHERE {where} AND json_type(j.rules) = 'ARRAY')
        WHERE lower(e->>'answer') IN ('yes', 'no') AND (e->>'rule') IS NOT NULL
        GROUP BY ALL""", p)

    def table(rows: list[dict], key: str | None) -> dict:
        out: dict = {}
        for r in rows:
            k = r[key] if key else "all"
            c = out.setdefault(k, [0, 0, 0, 0])
            idx = {(True, True): 0, (False, True): 1, (True, False): 2, (False, False): 3}[
                (bool(r["judge_yes"]), bool(r["human_yes"]))]
            c[idx] += int(r["n"])
        return {k: _cell_stats(*v) for k, v in sorted(out.items())}

    overall = table(by_task, None).get("all", _cell_stats(0, 0, 0, 0))
    return {"overall": overall, "per_task": table(by_task, "task"), "per_rule": table(by_rule, "rule")}


def cell_filter(base: QueueFilter, judge_yes: bool, human_accepted: bool, task: str | None = None,
                rule: str | None = None) -> QueueFilter:
    """The queue filter that lists the examples behind one agreement cell."""
    f = base.with_(status="accepted" if human_accepted else "rejected")
    if task:
        f = f.with_(tasks=(task,))
    if rule:
        return f.with_(judge="any", rule=rule, rule_answer="yes" if judge_yes else "no")
    return f.with_(judge="passed" if judge_yes else "failed", rule=None)


# --------------------------------------------------------------------------- status / options

def review_status(store: Store) -> dict:
    """Headless summary: counts per task by human status and effective verdict, plus agreement."""
    per_task = store.rows("""
        SELECT g.task, count(*) AS total,
               count(*) FILTER (WHERE r.verdict = 'accepted') AS accepted,
               count(*) FILTER (WHERE r.verdict = 'rejected') AS rejected,
               count(*) FILTER (WHERE r.verdict = 'skipped') AS skipped,
               count(*) FILTER (WHERE r.verdict IS NULL) AS unreviewed,
               count(*) FILTER (WHERE r.edited_fields IS NOT NULL) AS edited,
               count(*) FILTER (WHERE e.effective_verdict = 'accepted') AS effective_accepted,
               count(*) FILTER (WHERE e.effective_verdict = 'rejected') AS effective_rejected,
               count(*) FILTER (WHERE j.overall) AS judge_passed,
               count(*) FILTER (WHERE NOT j.overall) AS judge_failed
        FROM generations g LEFT JOIN reviews r ON r.generation_id = g.id
        LEFT JOIN latest_judgments j ON j.generation_id = g.id
        LEFT JOIN review_effective e ON e.generation_id = g.id
        GROUP BY g.task ORDER BY g.task""")
    per_task = [{k: (v if k == "task" else int(v or 0)) for k, v in r.items()} for r in per_task]
    totals = {k: sum(r[k] for r in per_task) for k in per_task[0] if k != "task"} if per_task else {}
    reviewers = store.rows("SELECT reviewer, count(*) AS n FROM reviews GROUP BY 1 ORDER BY 2 DESC")
    agr = agreement(store)
    return {"totals": totals, "per_task": per_task,
            "reviewers": [{"reviewer": r["reviewer"], "n": int(r["n"])} for r in reviewers],
            "agreement": {"overall": agr["overall"], "per_task": agr["per_task"]}}


def filter_options(store: Store) -> dict:
    """Values for the filter widgets (small distinct queries)."""
    map_id = latest_map_id(store)
    clusters = []
    if map_id is not None:
        clusters = store.rows(
            "SELECT c.cluster, coalesce(c.label, '') AS label, c.size FROM clusters c "
            "WHERE c.map_id = ? ORDER BY c.cluster", [map_id])
        if not clusters:
            clusters = [{"cluster": int(r[0]), "label": "", "size": None} for r in store.execute(
                "SELECT DISTINCT cluster FROM map_points WHERE map_id = ? ORDER BY 1", [map_id]).fetchall()]
    rules = [r[0] for r in store.execute("""
        SELECT DISTINCT (e->>'rule') FROM (SELECT unnest(CAST(rules AS JSON[])) AS e FROM judgments
                                          WHERE json_type(rules) = 'ARRAY') WHERE (e->>'rule') IS NOT NULL
        ORDER BY 1 LIMIT 500""").fetchall()]
    return {
        "tasks": [r[0] for r in store.execute("SELECT DISTINCT task FROM generations ORDER BY 1").fetchall()],
        "languages": [r[0] for r in store.execute(
            "SELECT DISTINCT l FROM (SELECT s.language AS l FROM generations g JOIN snippets s ON s.id = g.snippet_id"
            " UNION SELECT target_language FROM generations) WHERE l IS NOT NULL ORDER BY 1").fetchall()],
        "map_id": map_id,
        "clusters": clusters,
        "selections": store.rows("SELECT id, name, n_items FROM selections ORDER BY id DESC"),
        "rules": rules,
        "reviewers": [r[0] for r in store.execute(
            "SELECT DISTINCT reviewer FROM reviews WHERE reviewer IS NOT NULL ORDER BY 1").fetchall()],
    }
