"""The audit log as tests read it."""
from __future__ import annotations

import json


def audit_rows(store, action: str) -> list[dict]:
    """Every `action` row of the audit log, oldest first, with `before` and `after` parsed."""
    rows = store.rows("SELECT actor, entity, entity_id, before, after FROM audit_log WHERE action = ? ORDER BY id",
                      [action])
    for r in rows:
        r["before"] = None if r["before"] is None else json.loads(r["before"])
        r["after"] = None if r["after"] is None else json.loads(r["after"])
    return rows
