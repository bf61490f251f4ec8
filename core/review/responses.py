"""Every reviewer's own response to an example, the example's status, and adjudication.

An example that needs one reviewer works as before teams: the decision is the example's verdict
(`review_records`, through core.review.decisions), and a copy is kept as that reviewer's response.
An example that needs several (overlap, core.review.assign) collects one response per reviewer in
`review_responses`; its verdict in `review_records` is *consolidated* from them:

* fewer accept/reject responses than it needs → pending, no human verdict yet;
* all in and agreeing → agreed: that verdict (signed by every responder);
* all in, disagreeing → conflict: no human verdict until an adjudicator decides;
* adjudicated → resolved: the adjudicator's verdict, final (later responses are refused).

Blind review: a reviewer sees the other responses to an overlap example only once they have given
theirs (adjudicators see them to decide a conflict).
"""
from __future__ import annotations

import json
import uuid
from typing import Any

from core.errors import ShoalError
from core.review.common import StaleReview, loads, put_review, review_json, row_dict
from core.store import Store
from core.team import members as team

RESPOND_ACTION = "review.respond"
CONSOLIDATE_ACTION = "review.consolidate"
ADJUDICATE_ACTION = "review.adjudicate"
STATUSES = ("pending", "decided", "agreed", "conflict", "resolved")


def response_json(r: dict | None) -> dict | None:
    if r is None:
        return None
    return {"verdict": r["verdict"], "note": r.get("note"), "reasons": loads(r.get("reasons")) or [],
            "edited_fields": loads(r.get("edited_fields")), "reviewer": r["reviewer"], "version": int(r["version"])}


def _response(cur, gid: int, reviewer: str) -> dict | None:
    return row_dict(cur, cur.execute("SELECT * FROM review_responses WHERE generation_id = ? AND reviewer = ?",
                                     [gid, reviewer]).fetchone())


_UPSERT_RESPONSE = (
    "INSERT INTO review_responses(generation_id, reviewer, verdict, note, reasons, edited_fields, version,"
    " opened_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp - to_microseconds(?), current_timestamp) "
    "ON CONFLICT (generation_id, reviewer) DO UPDATE SET verdict = excluded.verdict, note = excluded.note,"
    " reasons = excluded.reasons, edited_fields = excluded.edited_fields, version = excluded.version,"
    " opened_at = coalesce(excluded.opened_at, review_responses.opened_at), updated_at = excluded.updated_at")


_UNREAD: Any = object()      # write_response: the caller did not read the current response

_INSERT_RESPONSE = (
    "INSERT INTO review_responses(generation_id, reviewer, verdict, note, reasons, edited_fields, version,"
    " opened_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, current_timestamp - to_microseconds(?), current_timestamp)")
_UPDATE_RESPONSE = (
    "UPDATE review_responses SET verdict = ?, note = ?, reasons = ?, edited_fields = ?, version = ?,"
    " opened_at = coalesce(current_timestamp - to_microseconds(?), opened_at), updated_at = current_timestamp"
    " WHERE generation_id = ? AND reviewer = ?")


def write_response(cur, gid: int, reviewer: str, verdict: str, note: str | None, reasons: list[str],
                   edited: dict | None, batch_id: str, seconds_open: float | None = None,
                   audit: bool = True, current: Any = _UNREAD) -> dict:
    """Inside a transaction: upsert the reviewer's response and audit it; returns the new response.
    A one-reviewer decision keeps a copy as the response without a second audit row (`audit=False`):
    its review.decide row already says it all. `seconds_open`: how long the reviewer had the example
    open before deciding (their speed). `current`: the response as the caller just read it (else read here)."""
    if current is _UNREAD:
        current = _response(cur, gid, reviewer)
    after = {"verdict": verdict, "note": note, "reasons": reasons, "edited_fields": edited, "reviewer": reviewer,
             "version": (int(current["version"]) if current else 0) + 1}
    values = [verdict, note, json.dumps(reasons), None if edited is None else json.dumps(edited), after["version"],
              _micros(seconds_open)]
    # a plain INSERT or UPDATE (the row was just read): DuckDB's ON CONFLICT costs about three times as much
    if current is None:
        cur.execute(_INSERT_RESPONSE, [gid, reviewer] + values)
    else:
        cur.execute(_UPDATE_RESPONSE, values + [gid, reviewer])
    if not audit:
        return after
    cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
                f"VALUES (?, '{RESPOND_ACTION}', 'response', ?, ?, ?, ?)",
                [reviewer, str(gid), None if current is None else json.dumps(response_json(current), default=str),
                 json.dumps(after), batch_id])
    return after


def _micros(seconds: float | None) -> int | None:
    return None if seconds is None else max(0, int(float(seconds) * 1_000_000))


def response_version(store: Store, generation_id: int, reviewer: str) -> int:
    v = store.scalar("SELECT version FROM review_responses WHERE generation_id = ? AND reviewer = ?",
                     [int(generation_id), reviewer])
    return int(v or 0)


# --------------------------------------------------------------------------- consolidation

def _needed(cur, gid: int) -> int:
    v = cur.execute("SELECT max(needed) FROM assignments WHERE generation_id = ?", [gid]).fetchone()
    return int(v[0]) if v and v[0] is not None else 1


_RESPONSE_ROWS = ("SELECT reviewer, verdict, note, reasons, edited_fields FROM review_responses"
                  " WHERE generation_id = ? {} ORDER BY updated_at, reviewer")


def _adjudication(cur, gid: int) -> dict | None:
    return row_dict(cur, cur.execute("SELECT * FROM adjudications WHERE generation_id = ?", [gid]).fetchone())


def _target(cur, gid: int, needed: int) -> tuple[str, dict | None]:
    """(status, the verdict review_records should hold or None) from the responses / adjudication."""
    adj = _adjudication(cur, gid)
    if adj:
        return _target_of(adj, [], needed)
    rows = cur.execute(_RESPONSE_ROWS.format("AND verdict IN ('accepted', 'rejected')"), [gid]).fetchall()
    return _target_of(None, rows, needed)


def _target_of(adj: dict | None, rows: list, needed: int) -> tuple[str, dict | None]:
    """_target from what it reads: the adjudication and the accept/reject responses (reviewer,
    verdict, note, reasons, edited_fields) in the order they came."""
    if adj:
        return "resolved", {"verdict": adj["verdict"], "note": adj["note"], "reasons": [], "edited_fields": None,
                            "reviewer": adj["adjudicator"]}
    if len(rows) < needed:
        return "pending", None
    verdicts = {r[1] for r in rows}
    if len(verdicts) > 1:
        return "conflict", None
    reasons = sorted({x for r in rows for x in (loads(r[3]) or [])})
    notes = "; ".join(f"{r[0]}: {r[2]}" for r in rows if r[2])
    edits = [loads(r[4]) for r in rows if r[4] is not None]
    return "agreed", {"verdict": rows[0][1], "note": notes or None, "reasons": reasons,
                      "edited_fields": edits[-1] if edits else None, "reviewer": ", ".join(sorted(r[0] for r in rows))}


_UNREAD_RECORD: Any = object()   # consolidate: the caller did not read the example's review_records row


def consolidate(cur, gid: int, actor: str, batch_id: str, needed: int | None = None,
                rows: list | None = None, record: Any = _UNREAD_RECORD) -> str:
    """Inside a transaction: bring an overlap example's `review_records` row in line with its
    responses (audited as review.consolidate when it changes); returns the example's status.
    What the caller has just read in this transaction is not read again: `needed`, `rows` (the
    accept/reject responses as `_target_of` takes them, in the order they came; given only when
    the example is not adjudicated) and `record` (the example's review_records row, None if none)."""
    need = _needed(cur, gid) if needed is None else needed
    status, target = _target(cur, gid, need) if rows is None else _target_of(None, rows, need)
    if record is _UNREAD_RECORD:
        record = row_dict(cur, cur.execute("SELECT * FROM review_records WHERE generation_id = ?", [gid]).fetchone())
    current = live_review(record)
    same = (current is None and target is None) or (
        current is not None and target is not None and current["verdict"] == target["verdict"]
        and current["reviewer"] == target["reviewer"] and current["note"] == target["note"]
        and loads(current["edited_fields"]) == target["edited_fields"])
    if same:
        return status
    version = (int(record["version"]) if record else 0) + 1
    if target is None:
        cur.execute("""UPDATE review_records SET verdict = NULL, note = NULL, reasons = NULL, edited_fields = NULL,
                       reviewer = NULL, batch_id = NULL, version = ?, updated_at = current_timestamp,
                       undone_at = current_timestamp WHERE generation_id = ?""", [version, gid])
        after = None
    else:
        after = {**target, "version": version, "batch_id": None}
        put_review(cur, gid, record is not None, target["verdict"], target["note"], target["reasons"],
                   target["edited_fields"], target["reviewer"], version)
    cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
                f"VALUES (?, '{CONSOLIDATE_ACTION}', 'review', ?, ?, ?, ?)",
                [actor, str(gid), None if current is None else json.dumps(review_json(current), default=str),
                 None if after is None else json.dumps({**after, "status": status}), batch_id])
    return status


def live_review(record: dict | None) -> dict | None:
    """The live review in a review_records row (without `undone_at`); None for no row or a tombstone."""
    if record is None or record["undone_at"] is not None:
        return None
    return {k: v for k, v in record.items() if k != "undone_at"}


KEEP_EDIT: Any = object()    # respond_in: the response keeps the reviewer's last edit

_ALL_RESPONSES = ("SELECT reviewer, verdict, note, reasons, edited_fields, version, updated_at FROM review_responses"
                  " WHERE generation_id = ? ORDER BY updated_at, reviewer")


def respond_in(cur, gid: int, verdict: str, reviewer: str, expected_version: int, note: str | None,
               reasons: list[str], edited: Any, batch_id: str, seconds_open: float | None, needed: int,
               record: dict | None) -> dict:
    """Inside a transaction (core.review.decide's): one reviewer's response to an overlap example,
    and the example's verdict consolidated from the responses. Raises StaleReview when the
    reviewer's own response is no longer at `expected_version`. `record`: the example's review_records row as the
    caller has just read it. `edited` = `KEEP_EDIT` carries the reviewer's last edit over.
    Reads the adjudication and the responses once; the consolidation takes them as they are
    after this response (the newest, so the last in order)."""
    if cur.execute("SELECT count(*) FROM adjudications WHERE generation_id = ?", [gid]).fetchone()[0]:
        raise ShoalError(f"Example #{gid} was resolved by an adjudicator; its verdict is final.")
    rows = cur.execute(_ALL_RESPONSES, [gid]).fetchall()
    mine = next((r for r in rows if r[0] == reviewer), None)
    current = None if mine is None else dict(zip(("reviewer", "verdict", "note", "reasons", "edited_fields",
                                                  "version", "updated_at"), mine))
    if (int(current["version"]) if current else 0) != int(expected_version):
        raise StaleReview(gid, current, int(expected_version))
    if edited is KEEP_EDIT:
        edited = loads(current["edited_fields"]) if current else None
    after = write_response(cur, gid, reviewer, verdict, note, reasons, edited, batch_id, seconds_open,
                           current=current)
    decisive = [r[:5] for r in rows if r[0] != reviewer and r[1] in ("accepted", "rejected")]
    if verdict in ("accepted", "rejected"):
        decisive.append((reviewer, verdict, note, json.dumps(reasons), None if edited is None else json.dumps(edited)))
    status = consolidate(cur, gid, reviewer, batch_id, needed=needed, rows=decisive, record=record)
    return {**after, "status": status}


# --------------------------------------------------------------------------- adjudication

def adjudicate(store: Store, generation_id: int, verdict: str, *, adjudicator: str, note: str | None = None) -> dict:
    """The final verdict on a conflict: written once, audited, and the example's verdict from then on."""
    from core.review.common import require_reviewer
    if verdict not in ("accepted", "rejected"):
        raise ShoalError("An adjudication accepts or rejects the example.")
    team.authorize(store, adjudicator, "adjudicate", target=int(generation_id), audit_allowed=False)
    adjudicator = require_reviewer(adjudicator)
    gid = int(generation_id)
    batch_id = uuid.uuid4().hex
    note = (note or "").strip() or None

    def write(cur) -> str:
        if cur.execute("SELECT count(*) FROM adjudications WHERE generation_id = ?", [gid]).fetchone()[0]:
            raise ShoalError(f"Example #{gid} is already resolved; an adjudication is final.")
        status, _ = _target(cur, gid, _needed(cur, gid))
        if status != "conflict":
            raise ShoalError(f"Example #{gid} is {status}, not in conflict: there is nothing to adjudicate.")
        rows = cur.execute("SELECT reviewer, verdict FROM review_responses WHERE generation_id = ? "
                           "ORDER BY reviewer", [gid]).fetchall()
        cur.execute("INSERT INTO adjudications(generation_id, verdict, adjudicator, note) VALUES (?, ?, ?, ?)",
                    [gid, verdict, adjudicator, note])
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
                    f"VALUES (?, '{ADJUDICATE_ACTION}', 'review', ?, ?, ?, ?)",
                    [adjudicator, str(gid), json.dumps({"responses": {r[0]: r[1] for r in rows}}),
                     json.dumps({"verdict": verdict, "note": note, "adjudicator": adjudicator}), batch_id])
        return consolidate(cur, gid, adjudicator, batch_id)

    status = store.write(write)
    return {"generation_id": gid, "verdict": verdict, "adjudicator": adjudicator, "status": status,
            "action_id": batch_id}


# --------------------------------------------------------------------------- reading

def example_status(store: Store, generation_id: int) -> dict:
    """needed, responses in, accepts/rejects, status and the final verdict of one example."""
    gid = int(generation_id)
    cur = store.cursor()
    final = store.one("SELECT verdict, reviewer FROM reviews WHERE generation_id = ?", [gid])
    return response_status(gid, _needed(cur, gid), responses(store, gid), _adjudication(cur, gid), final)


def response_status(gid: int, need: int, rows: list[dict], adjudication: dict | None, final: dict | None) -> dict:
    """`example_status` from what it reads: how many reviewers the example needs, its responses
    (`responses`), its adjudication and its live review (verdict, reviewer), each None if none."""
    decisive = [(r["reviewer"], r["verdict"], r["note"], r["reasons"], r["edited_fields"]) for r in rows
                if r["verdict"] in ("accepted", "rejected")]
    status, _ = _target_of(adjudication, decisive, need)
    accepts = sum(1 for r in decisive if r[1] == "accepted")
    if need <= 1 and status != "resolved":
        status = "decided" if final and final["verdict"] in ("accepted", "rejected") else "pending"
    return {"generation_id": gid, "needed": need, "responses": len(decisive), "accepts": accepts,
            "rejects": len(decisive) - accepts, "status": status, "final_verdict": final["verdict"] if final else None,
            "final_by": final["reviewer"] if final else None}


def responses(store: Store, generation_id: int) -> list[dict]:
    rows = store.rows("SELECT * FROM review_responses WHERE generation_id = ? ORDER BY updated_at, reviewer",
                      [int(generation_id)])
    for r in rows:
        r["reasons"] = loads(r["reasons"]) or []
        r["edited_fields"] = loads(r["edited_fields"])
    return rows


def visible_responses(store: Store, generation_id: int, viewer: str, *, see_all: bool = False) -> tuple[list[dict], int]:
    """(the responses `viewer` may see, how many are hidden). Blind: before the viewer has given an
    accept/reject on an overlap example, the others' responses are hidden (unless `see_all`)."""
    rows = responses(store, generation_id)
    return visible_of(rows, viewer, _needed(store.cursor(), int(generation_id)), see_all)


def visible_of(rows: list[dict], viewer: str, need: int, see_all: bool = False) -> tuple[list[dict], int]:
    """`visible_responses` from the example's responses and how many reviewers it needs."""
    if see_all or need <= 1:
        return rows, 0
    mine = [r for r in rows if r["reviewer"] == viewer]
    if any(r["verdict"] in ("accepted", "rejected") for r in mine):
        return rows, 0
    return mine, len(rows) - len(mine)


def team_view(store: Store, generation_id: int, viewer: str, need: int, final: dict | None,
              see_all: bool = False) -> dict:
    """What the Review page shows of an overlap example for `viewer`, in two lookups (its
    responses and its adjudication): `status` (as `example_status`), the responses they may see
    (`shown`) and how many are `hidden` (blind review), and the version of their own response
    (`my_version`, what `decide` must be given). `need` and `final` (the live review): as the
    caller has read them."""
    gid = int(generation_id)
    rows = responses(store, gid)
    status = response_status(gid, need, rows, _adjudication(store.cursor(), gid), final)
    shown, hidden = visible_of(rows, viewer, need, see_all)
    mine = next((r for r in rows if r["reviewer"] == viewer), None)
    return {"status": status, "shown": shown, "hidden": hidden, "my_version": int(mine["version"]) if mine else 0}


def status_counts(store: Store, reviewer: str | None = None) -> dict:
    """Examples per team status (over the assigned examples of `reviewer`, or all)."""
    scope = "WHERE generation_id IN (SELECT generation_id FROM assignments WHERE reviewer = ?)" if reviewer else ""
    rows = store.execute(f"SELECT status, count(*) FROM review_team_status {scope} GROUP BY 1",
                         [reviewer] if reviewer else []).fetchall()
    out = {s: 0 for s in STATUSES}
    out.update({s: int(n) for s, n in rows})
    return out


def conflict_ids(store: Store, limit: int = 500) -> list[int]:
    return [int(r[0]) for r in store.execute(
        "SELECT generation_id FROM review_team_status WHERE status = 'conflict' ORDER BY generation_id LIMIT ?",
        [int(limit)]).fetchall()]


def restore_responses(cur, action_id: str, actor: str, undo_id: str) -> list[int]:
    """Inside an undo: put back each response the action wrote (unless changed since); returns
    the generation ids whose responses were restored."""
    rows = cur.execute(f"""SELECT CAST(entity_id AS BIGINT), before, after FROM audit_log
                           WHERE batch_id = ? AND action = '{RESPOND_ACTION}' ORDER BY id""", [action_id]).fetchall()
    restored = []
    for gid, before, after in rows:
        before, after = loads(before), loads(after)
        current = _response(cur, gid, after["reviewer"])
        if current is None or int(current["version"]) != int(after["version"]):
            continue
        if before is None:
            cur.execute("DELETE FROM review_responses WHERE generation_id = ? AND reviewer = ?", [gid, after["reviewer"]])
        else:
            cur.execute(_UPSERT_RESPONSE, [gid, before["reviewer"], before["verdict"], before.get("note"),
                                           json.dumps(before.get("reasons") or []),
                                           None if before.get("edited_fields") is None
                                           else json.dumps(before["edited_fields"]),
                                           int(after["version"]) + 1, None])
        cur.execute("INSERT INTO audit_log(actor, action, entity, entity_id, before, after, batch_id) "
                    "VALUES (?, 'review.undo_response', 'response', ?, ?, ?, ?)",
                    [actor, str(gid), json.dumps(after), None if before is None else json.dumps(before), undo_id])
        restored.append(int(gid))
    return restored


def is_overlap(store: Store, generation_id: int) -> bool:
    return _needed(store.cursor(), int(generation_id)) > 1



def sync_undone_decision(cur) -> None:
    """Inside an undo of one-reviewer decisions (temp table `_undo_ok`): the deciding reviewer's
    response copy follows the review back — to its previous verdict when it was theirs, else away."""
    cur.execute("""
        DELETE FROM review_responses WHERE (generation_id, reviewer) IN (
            SELECT (u.gid, u.after->>'reviewer') FROM _undo_ok u
            WHERE u.before IS NULL OR (u.before->>'reviewer') IS DISTINCT FROM (u.after->>'reviewer'))""")
    cur.execute("""
        UPDATE review_responses SET verdict = (u.before->>'verdict'), note = (u.before->>'note'),
               reasons = (u.before->'reasons'), edited_fields = CASE WHEN json_type((u.before->'edited_fields')) = 'NULL'
                   THEN NULL ELSE (u.before->'edited_fields') END,
               version = review_responses.version + 1, updated_at = current_timestamp
        FROM _undo_ok u WHERE review_responses.generation_id = u.gid
          AND review_responses.reviewer = (u.after->>'reviewer') AND (u.before->>'reviewer') = (u.after->>'reviewer')""")
