"""Human verdicts: one decision (optionally with edited fields) and bulk actions over a filter.

Concurrency: every review carries a `version`. A save names the version it was based on
(`expected_version`, 0 = "no review yet"); if the review changed since, `StaleReview` is raised
and nothing is written. Versions only grow per generation (undo included: an undone review stays
in `review_records` as a tombstone holding its highest version), so an old tab can never save
over a newer verdict. Every change writes `audit_log` rows (who, when, before, after); one user
action shares one `batch_id` and is undone as a unit (core.review.undo).
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Iterable

from core.errors import ShoalError
from core.review.assign import needed
from core.review.common import VERDICTS, StaleReview, loads, put_review, require_reviewer, review_json, row_dict
from core.review.filters import QueueFilter, from_clause, where_clause
from core.review.responses import KEEP_EDIT, live_review, respond_in, response_version, write_response
from core.store import Store
from core.team import members as team


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


def _original_fields(store: Store, gid: int, fields: bool) -> tuple[dict, int]:
    """The example's generated fields (only when `fields`: an edit to check) and how many
    reviewers it needs, in one lookup; raises when there is no such example."""
    gen = store.one(f"SELECT {'fields' if fields else 'NULL'} AS fields, (SELECT max(needed) FROM assignments "
                    "WHERE generation_id = ?) AS needed FROM generations WHERE id = ?", [gid, gid])
    if gen is None:
        raise ShoalError(f"There is no generated example #{gid}.")
    original = loads(gen["fields"])
    return (original if isinstance(original, dict) else {}), int(gen["needed"] or 1)


_RECORD = "SELECT * FROM review_records WHERE generation_id = ?"
_MY_VERSION = "SELECT version FROM review_responses WHERE generation_id = ? AND reviewer = ?"


def decide(store: Store, generation_id: int, verdict: str, *, reviewer: str, expected_version: int,
           note: str | None = None, reasons: Iterable[str] | None = None,
           edited_fields: dict | None = None, seconds_open: float | None = None) -> dict:
    """Record one human verdict (optionally with edited fields). Written and committed before it
    returns; raises StaleReview if the review is no longer at `expected_version`.

    An example that needs several reviewers (overlap) takes the reviewer's own response instead
    (core.review.responses): `expected_version` is then the version of *their* response (0 = none
    yet, see `version_for`), and the example's verdict follows once the responses agree.
    `seconds_open`: how long the reviewer looked at the example (for their speed).

    One transaction of point lookups and plain writes: the example's review row, this reviewer's
    response, the audit row (and on an overlap example the consolidated verdict with its own)."""
    if verdict not in VERDICTS:
        raise ShoalError(f"Unknown verdict {verdict!r}; use one of {', '.join(VERDICTS)}.")
    team.authorize(store, reviewer, "review", target=int(generation_id), audit_allowed=False)   # a reviewer: own queue
    reviewer = require_reviewer(reviewer)
    gid = int(generation_id)
    original, need = _original_fields(store, gid, fields=edited_fields is not None)
    reasons = [str(x) for x in (reasons or [])]
    note = (note or "").strip() or None
    batch_id = uuid.uuid4().hex
    edit = _clean_edit(original, edited_fields) if edited_fields is not None else KEEP_EDIT

    def write(cur) -> dict:
        # the row, live or a tombstone (undone): the live review and the highest version ever
        record = row_dict(cur, cur.execute(_RECORD, [gid]).fetchone())
        if need > 1:
            return respond_in(cur, gid, verdict, reviewer, expected_version, note, reasons, edit, batch_id,
                              seconds_open, need, record)
        current = live_review(record)
        if (current["version"] if current else 0) != int(expected_version):
            raise StaleReview(gid, current, int(expected_version))
        mine = cur.execute(_MY_VERSION, [gid, reviewer]).fetchone()
        edited = edit if edit is not KEEP_EDIT else (loads(current["edited_fields"]) if current else None)
        version = (int(record["version"]) if record else 0) + 1
        after = {"verdict": verdict, "note": note, "reasons": reasons, "edited_fields": edited,
                 "reviewer": reviewer, "version": version, "batch_id": None}
        put_review(cur, gid, record is not None, verdict, note, reasons, edited, reviewer, version)
        cur.execute(
            "INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
            "VALUES (?, 'review.decide', 'review', ?, ?, ?, ?)",
            [reviewer, str(gid), None if current is None else json.dumps(review_json(current), default=str),
             json.dumps(after), batch_id])
        write_response(cur, gid, reviewer, verdict, note, reasons, edited, batch_id, seconds_open, audit=False,
                       current=None if mine is None else {"version": mine[0]})
        return after

    after = store.write(write)
    return {**after, "generation_id": gid, "action_id": batch_id}


def version_for(store: Store, generation_id: int, reviewer: str) -> int:
    """The version `decide` must be given as `expected_version` by this reviewer: their own
    response's on an overlap example, else the example's review's (0 when there is none)."""
    if needed(store, generation_id) > 1:
        return response_version(store, generation_id, reviewer)
    r = store.scalar("SELECT version FROM reviews WHERE generation_id = ?", [int(generation_id)])
    return int(r or 0)


# --------------------------------------------------------------------------- bulk

@dataclass
class BulkPreview:
    matching: int          # examples in the filter
    to_change: int         # would get the new verdict
    overriding: int        # of those, already have the other human verdict (only with overwrite)
    already: int           # already have this verdict


@dataclass
class BulkResult:
    batch_id: str
    changed: int
    verdict: str


def _bulk_scope(f: QueueFilter, verdict: str, overwrite: bool) -> tuple[str, list]:
    where, p = where_clause(f)
    guard = "r.verdict IS DISTINCT FROM ?"
    if not overwrite:
        guard += " AND (r.verdict IS NULL OR r.verdict = 'skipped')"
    return f"{where} AND {guard}", p + [verdict]


def bulk_preview(store: Store, f: QueueFilter, verdict: str, overwrite: bool = False) -> BulkPreview:
    frm, _ = from_clause(store, f)
    where, p = where_clause(f)
    row = store.execute(f"""
        SELECT count(*),
               count(*) FILTER (WHERE r.verdict IS DISTINCT FROM ?
                                AND ({'TRUE' if overwrite else 'FALSE'} OR r.verdict IS NULL OR r.verdict = 'skipped')),
               count(*) FILTER (WHERE r.verdict IN ('accepted', 'rejected') AND r.verdict <> ?),
               count(*) FILTER (WHERE r.verdict = ?)
        {frm} WHERE {where}""", [verdict, verdict, verdict] + p).fetchone()
    return BulkPreview(int(row[0]), int(row[1]), int(row[2]) if overwrite else 0, int(row[3]))


_BEFORE_JSON = ("CASE WHEN r.verdict IS NULL THEN NULL ELSE json_object('verdict', r.verdict, 'note', r.note,"
                " 'reasons', r.reasons, 'edited_fields', r.edited_fields, 'reviewer', r.reviewer,"
                " 'version', r.version, 'batch_id', r.batch_id) END")


def _write_bulk(cur, frm: str, where: str, p: list, verdict: str, note: str | None, reviewer: str,
                batch_id: str) -> int:
    """Inside the transaction: audit rows and review rows for every example in scope; their number."""
    cur.execute(f"""
        CREATE OR REPLACE TEMP TABLE _bulk AS
        SELECT g.id AS gid, {_BEFORE_JSON} AS before, r.edited_fields AS edited
        {frm} WHERE {where}""", p)
    cur.execute("""
        CREATE OR REPLACE TEMP TABLE _bulk_v AS
        SELECT b.*, coalesce(rr.version, 0) + 1 AS new_version
        FROM _bulk b LEFT JOIN review_records rr ON rr.generation_id = b.gid""")
    n = int(cur.execute("SELECT count(*) FROM _bulk_v").fetchone()[0])
    if n:
        cur.execute("""
            INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id)
            SELECT ?, 'review.bulk', 'review', CAST(gid AS VARCHAR), before,
                   json_object('verdict', ?, 'note', ?, 'reasons', '[]'::JSON, 'edited_fields', edited,
                               'reviewer', ?, 'version', new_version, 'batch_id', ?), ?
            FROM _bulk_v ORDER BY gid""", [reviewer, verdict, note, reviewer, batch_id, batch_id])
        cur.execute("""
            INSERT INTO review_records(generation_id, verdict, note, reasons, edited_fields, reviewer, version,
                                       batch_id, updated_at, undone_at)
            SELECT gid, ?, ?, '[]', edited, ?, new_version, ?, current_timestamp, NULL FROM _bulk_v
            ON CONFLICT (generation_id) DO UPDATE SET verdict = excluded.verdict, note = excluded.note,
                reasons = excluded.reasons, edited_fields = excluded.edited_fields,
                reviewer = excluded.reviewer, version = excluded.version, batch_id = excluded.batch_id,
                updated_at = excluded.updated_at, undone_at = NULL""", [verdict, note, reviewer, batch_id])
    cur.execute("DROP TABLE IF EXISTS _bulk")
    cur.execute("DROP TABLE IF EXISTS _bulk_v")
    return n


def bulk_decide(store: Store, f: QueueFilter, verdict: str, *, reviewer: str, note: str | None = None,
                overwrite: bool = False) -> BulkResult:
    """Give every example matching the filter the verdict, in one transaction, as one undoable action.
    Without `overwrite`, examples that already carry a human accept/reject keep it."""
    if verdict not in ("accepted", "rejected"):
        raise ShoalError("Bulk actions accept or reject.")
    team.authorize(store, reviewer, "bulk_review", target=verdict, audit_allowed=False)
    reviewer = require_reviewer(reviewer)
    batch_id = uuid.uuid4().hex
    note = (note or "").strip() or None
    frm, _ = from_clause(store, f)
    where, p = _bulk_scope(f, verdict, overwrite)
    n = store.write(lambda cur: _write_bulk(cur, frm, where, p, verdict, note, reviewer, batch_id))
    if n > 1000:
        store.checkpoint()
    return BulkResult(batch_id, n, verdict)
