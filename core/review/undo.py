"""Undo one user action (a decision or a bulk action) as a unit, and the audit trail.

Undo puts each review back as it was before the action. A review that did not exist before is
not deleted: it stays in `review_records` as a tombstone (verdict, note, edits and reviewer
cleared, `undone_at` set) holding the highest version it reached, so the next decision takes a
new version number without reading the audit log. The `reviews` view hides tombstones, so an
undone review reads as "no human verdict", as it always did.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from core.review.common import DECISION_ACTIONS, UNDO_MARKER, NothingToUndo, StaleReview, loads, row_dict
from core.review.responses import RESPOND_ACTION, consolidate, restore_responses, sync_undone_decision
from core.store import Store
from core.team import members as team


@dataclass
class UndoResult:
    action_id: str
    action: str                      # review.decide | review.bulk
    restored: int
    not_restored: int                # changed again since (left as they are)
    generation_ids: list[int] = field(default_factory=list)


# A batch's kind: a bulk action or a decision (which also keeps a copy as the reviewer's response),
# else a response to an overlap example.
_UNDOABLE = DECISION_ACTIONS + (RESPOND_ACTION,)
_KIND = (f"CASE WHEN bool_or(action = 'review.bulk') THEN 'review.bulk' WHEN bool_or(action = 'review.decide') "
         f"THEN 'review.decide' ELSE '{RESPOND_ACTION}' END")


def last_action(store: Store, reviewer: str) -> dict | None:
    """The reviewer's most recent decision, response or bulk action that has not been undone."""
    return store.one(f"""
        SELECT batch_id AS action_id, {_KIND} AS action, count(DISTINCT entity_id) AS n, max(created_at) AS "at",
               max(id) AS last_id
        FROM audit_log
        WHERE actor = ? AND action IN {_UNDOABLE} AND batch_id IS NOT NULL
          AND batch_id NOT IN (SELECT entity_id FROM audit_log WHERE action = '{UNDO_MARKER}')
        GROUP BY batch_id ORDER BY last_id DESC LIMIT 1""", [reviewer])


def recent_actions(store: Store, limit: int = 10) -> list[dict]:
    """Recent decisions and bulk actions (anyone), newest first, with whether they were undone."""
    return store.rows(f"""
        SELECT a.batch_id AS action_id, {_KIND.replace('action', 'a.action')} AS action,
               any_value(a.actor) AS reviewer,
               count(DISTINCT a.entity_id) AS n, max(a.created_at) AS "at", max(a.id) AS last_id,
               any_value(json_extract_string(a.after, '$.verdict')) AS verdict,
               min(a.entity_id) AS first_generation,
               a.batch_id IN (SELECT entity_id FROM audit_log WHERE action = '{UNDO_MARKER}') AS undone
        FROM audit_log a WHERE a.action IN {_UNDOABLE} AND a.batch_id IS NOT NULL
        GROUP BY a.batch_id ORDER BY last_id DESC LIMIT ?""", [int(limit)])


def undo_last(store: Store, reviewer: str) -> UndoResult:
    act = last_action(store, (reviewer or "").strip())
    if act is None:
        raise NothingToUndo(f"Nothing to undo for reviewer {reviewer!r}.")
    return undo_action(store, act["action_id"], reviewer=reviewer)


def _action_of(cur, action_id: str) -> str:
    """The kind of action `action_id` is; NothingToUndo when unknown or already undone."""
    rows = cur.execute(f"""
        SELECT action, count(*) FROM audit_log WHERE batch_id = ? AND action IN {DECISION_ACTIONS}
        GROUP BY 1""", [action_id]).fetchall()
    if not rows:
        rows = cur.execute(f"SELECT action, count(*) FROM audit_log WHERE batch_id = ? AND action = '{RESPOND_ACTION}'"
                           " GROUP BY 1", [action_id]).fetchall()
    if not rows:
        raise NothingToUndo(f"No review action {action_id}.")
    if cur.execute(f"SELECT count(*) FROM audit_log WHERE action = '{UNDO_MARKER}' AND entity_id = ?",
                   [action_id]).fetchone()[0]:
        raise NothingToUndo("That action was already undone.")
    return rows[0][0]


def _stage_undo(cur, action_id: str) -> tuple[int, int]:
    """Temp tables `_undo` (every review the action touched) and `_undo_ok` (those unchanged since,
    with the version their restored row gets); returns (touched, restorable)."""
    cur.execute(f"""
        CREATE OR REPLACE TEMP TABLE _undo AS
        SELECT CAST(a.entity_id AS BIGINT) AS gid, a.before, a.after,
               CAST((a.after->>'version') AS INTEGER) AS action_version, rr.version AS highest_version,
               -- unchanged since the action: same version, or the same content again (e.g. after
               -- someone else's change was itself undone)
               (r.version = CAST((a.after->>'version') AS INTEGER)) OR (
                   r.verdict = (a.after->>'verdict')
                   AND r.reviewer IS NOT DISTINCT FROM (a.after->>'reviewer')
                   AND r.note IS NOT DISTINCT FROM (a.after->>'note')
                   AND coalesce(json(r.edited_fields), 'null') = coalesce(json((a.after->'edited_fields')), 'null'))
               OR (r.version IS NULL AND a.after IS NULL) AS unchanged
        FROM audit_log a
        LEFT JOIN reviews r ON r.generation_id = CAST(a.entity_id AS BIGINT)
        LEFT JOIN review_records rr ON rr.generation_id = CAST(a.entity_id AS BIGINT)
        WHERE a.batch_id = ? AND a.action IN {DECISION_ACTIONS}""", [action_id])
    cur.execute("""
        CREATE OR REPLACE TEMP TABLE _undo_ok AS
        SELECT u.*, greatest(coalesce(u.highest_version, 0), u.action_version) AS top_version
        FROM _undo u WHERE coalesce(u.unchanged, FALSE)""")
    total = int(cur.execute("SELECT count(*) FROM _undo").fetchone()[0])
    return total, int(cur.execute("SELECT count(*) FROM _undo_ok").fetchone()[0])


def _refuse_stale_decision(cur) -> None:
    gid, expected = cur.execute("SELECT gid, action_version FROM _undo").fetchone()
    current = row_dict(cur, cur.execute("SELECT * FROM reviews WHERE generation_id = ?", [gid]).fetchone())
    raise StaleReview(gid, current, expected)


def _restore(cur, reviewer: str, undo_id: str) -> None:
    """Audit first (needs the current rows), then put back each `before`; reviews that had no
    `before` become tombstones at their highest version (the next decision takes version + 1)."""
    cur.execute("""
        INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id)
        SELECT ?, 'review.undo', 'review', CAST(gid AS VARCHAR), after,
               CASE WHEN before IS NULL THEN NULL
                    ELSE json_merge_patch(before, json_object('version', top_version + 1)) END, ?
        FROM _undo_ok ORDER BY gid""", [reviewer, undo_id])
    cur.execute("""
        UPDATE review_records SET verdict = NULL, note = NULL, reasons = NULL, edited_fields = NULL,
               reviewer = NULL, batch_id = NULL, version = u.top_version, updated_at = current_timestamp,
               undone_at = current_timestamp
        FROM _undo_ok u WHERE review_records.generation_id = u.gid AND u.before IS NULL""")
    cur.execute("""
        UPDATE review_records SET verdict = (u.before->>'verdict'), note = (u.before->>'note'),
               reasons = (u.before->'reasons'), edited_fields = CASE WHEN json_type((u.before->'edited_fields')) = 'NULL'
                   THEN NULL ELSE (u.before->'edited_fields') END,
               reviewer = (u.before->>'reviewer'), version = u.top_version + 1,
               batch_id = (u.before->>'batch_id'), updated_at = current_timestamp, undone_at = NULL
        FROM _undo_ok u WHERE review_records.generation_id = u.gid AND u.before IS NOT NULL""")


def undo_action(store: Store, action_id: str, *, reviewer: str) -> UndoResult:
    """Put every review touched by one action back as it was before, as one transaction.
    Reviews changed again since the action are left alone (counted in `not_restored`); for a
    single decision that is refused with StaleReview. Undoing someone else's action is a bulk review
    action (curators and the owner)."""
    own = store.scalar(f"SELECT count(*) FROM audit_log WHERE batch_id = ? AND actor = ? AND action IN {_UNDOABLE}",
                       [action_id, str(reviewer).strip()])
    team.authorize(store, reviewer, "review" if own else "bulk_review", target=None if own else action_id,
                   audit_allowed=False)
    undo_id = uuid.uuid4().hex

    def write(cur) -> tuple[str, int, int, list[int]]:
        action = _action_of(cur, action_id)
        if action == RESPOND_ACTION:
            return _undo_responses(cur, action_id, reviewer, undo_id)
        total, ok = _stage_undo(cur, action_id)
        if action == "review.decide" and ok < total:
            _refuse_stale_decision(cur)
        _restore(cur, reviewer, undo_id)
        if action == "review.decide":
            sync_undone_decision(cur)
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
                    f"VALUES (?, '{UNDO_MARKER}', 'batch', ?, NULL, ?, ?)",
                    [reviewer, action_id, json.dumps({"restored": ok, "not_restored": total - ok,
                                                      "action": action}), undo_id])
        gids = [int(r[0]) for r in cur.execute("SELECT gid FROM _undo_ok ORDER BY gid").fetchall()]
        cur.execute("DROP TABLE IF EXISTS _undo")
        cur.execute("DROP TABLE IF EXISTS _undo_ok")
        return action, total, ok, gids

    action, total, ok, gids = store.write(write)
    if total > 1000:
        store.checkpoint()
    return UndoResult(action_id, action, ok, total - ok, gids)


def _undo_responses(cur, action_id: str, reviewer: str, undo_id: str) -> tuple[str, int, int, list[int]]:
    """Undo a response to an overlap example: the response goes back, the example is re-consolidated."""
    total = int(cur.execute(f"SELECT count(*) FROM audit_log WHERE batch_id = ? AND action = '{RESPOND_ACTION}'",
                            [action_id]).fetchone()[0])
    gids = restore_responses(cur, action_id, reviewer, undo_id)
    for gid in gids:
        if cur.execute("SELECT count(*) FROM adjudications WHERE generation_id = ?", [gid]).fetchone()[0]:
            raise NothingToUndo(f"Example #{gid} was resolved by an adjudicator since; its verdict is final.")
        consolidate(cur, gid, reviewer, undo_id)
    if total and not gids:
        raise NothingToUndo("That response was changed since; nothing to undo.")
    cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
                f"VALUES (?, '{UNDO_MARKER}', 'batch', ?, NULL, ?, ?)",
                [reviewer, action_id, json.dumps({"restored": len(gids), "not_restored": total - len(gids),
                                                  "action": RESPOND_ACTION}), undo_id])
    return RESPOND_ACTION, total, len(gids), gids


def audit_trail(store: Store, generation_id: int, include_responses: bool = False) -> list[dict]:
    """The example's history (oldest first); with `include_responses`, every reviewer's own
    responses too (keep them out while the viewer has not responded: blind review)."""
    entities = "('review', 'response')" if include_responses else "('review')"
    rows = store.rows("SELECT id, created_at AS \"at\", actor, action, before, after, batch_id FROM audit_log "
                      f"WHERE entity IN {entities} AND entity_id = ? ORDER BY id", [str(int(generation_id))])
    for r in rows:
        r["before"], r["after"] = loads(r["before"]), loads(r["after"])
    return rows
