"""Names every part of the review package shares: verdicts, filter choices, errors, JSON reading."""
from __future__ import annotations

import json
from typing import Any

from core.errors import ShoalError

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


def require_reviewer(reviewer: str | None) -> str:
    """The reviewer name, stripped; every decision is signed."""
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise ShoalError("Set a reviewer name first (sidebar, or --reviewer on the command line).")
    return reviewer


def loads(v: Any) -> Any:
    """JSON text from DuckDB as Python; anything else (or unparsable text) as it is."""
    if v is None or not isinstance(v, str):
        return v
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def review_json(r: dict | None) -> dict | None:
    """A review row as it is stored in the audit log's before/after."""
    if r is None:
        return None
    return {"verdict": r["verdict"], "note": r.get("note"), "reasons": loads(r.get("reasons")) or [],
            "edited_fields": loads(r.get("edited_fields")), "reviewer": r.get("reviewer"),
            "version": int(r["version"]), "batch_id": r.get("batch_id")}


_INSERT_RECORD = ("INSERT INTO review_records(generation_id, verdict, note, reasons, edited_fields, reviewer, version,"
                  " batch_id, updated_at, undone_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, current_timestamp, NULL)")
_UPDATE_RECORD = ("UPDATE review_records SET verdict = ?, note = ?, reasons = ?, edited_fields = ?, reviewer = ?,"
                  " version = ?, batch_id = NULL, updated_at = current_timestamp, undone_at = NULL"
                  " WHERE generation_id = ?")


def put_review(cur, gid: int, exists: bool, verdict: str, note: str | None, reasons: list[str],
               edited: dict | None, reviewer: str, version: int) -> None:
    """Inside a transaction: write an example's one live review (`exists`: it has a row in
    review_records, live or a tombstone). A plain INSERT or UPDATE: the caller has read the row
    anyway, and DuckDB's ON CONFLICT upsert costs about three times as much."""
    values = [verdict, note, json.dumps(list(reasons)), None if edited is None else json.dumps(edited), reviewer,
              int(version)]
    if exists:
        cur.execute(_UPDATE_RECORD, values + [gid])
    else:
        cur.execute(_INSERT_RECORD, [gid] + values)


def row_dict(cur, row) -> dict | None:
    """A fetched row as a dict keyed by the cursor's column names."""
    return None if row is None else dict(zip([d[0] for d in cur.description], row))
