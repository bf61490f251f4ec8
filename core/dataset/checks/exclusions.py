"""Every automatic exclusion, with its reason, in one table: what the pre-filter stopped and what
a failing check (decontamination, near-duplicate group, execution) keeps out of the export.

The Dataset page shows it before an export, and asks before a check leaves out an example a
person accepted (`accepted_blocked`, confirmed with `confirm_exclusions`): an automatic step
never overrides a human accept without saying so.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

from core.review.items import prefilter_reasons
from core.store import Store
from core.team import members as team

CONFIRMED_KEY = "dataset.confirmed_exclusions"   # ui_state: check row ids a person confirmed
BY = {"prefilter": "pre-filter", "decontamination": "benchmark contamination",
      "near_duplicate": "near-duplicate group", "execution": "failed execution",
      "semantic_duplicate": "semantic duplicate group", "semantic_decontamination": "semantic benchmark leak"}
COLUMNS = ["example", "excluded by", "reason", "verdict", "overridden", "in export", "kind", "check_id"]


def _loads(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, (dict, list)):
        return value
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def check_reason(kind: str, detail: Any) -> str:
    """Why a failing check of `kind` flagged an example, in a sentence."""
    d = _loads(detail) or {}
    if kind == "near_duplicate":
        sim = d.get("similarity")
        how = f" ({d.get('method') or 'similar'} {sim:.2f})" if isinstance(sim, (int, float)) else ""
        return f"near-duplicate of #{d.get('keep')}, which is kept{how}; group of {d.get('size', '?')}"
    if kind == "execution":
        err = (d.get("stderr") or "").strip().splitlines()
        return f"{d.get('status') or 'failed'}" + (f": {err[-1][:200]}" if err else "")
    if kind == "decontamination":
        hits = d.get("hits") or []
        names = sorted({h.get("benchmark", "?") for h in hits})
        return "contains text of " + (", ".join(names) if names else "a benchmark")
    if kind.startswith("semantic_"):
        from core.dataset.checks.semantic import semantic_reason
        return semantic_reason(kind, d)
    return kind


def automatic_exclusions(store: Store) -> pd.DataFrame:
    """One row per (example, automatic step): pre-filter stops and current failing checks."""
    rows = []
    for r in store.rows("""SELECT g.id, g.prefilter_reasons, r.verdict FROM generations g
                           LEFT JOIN reviews r ON r.generation_id = g.id
                           WHERE g.prefilter_ok = FALSE AND coalesce(g.parse_ok, TRUE) ORDER BY g.id"""):
        accepted = r["verdict"] == "accepted"
        rows.append({"example": int(r["id"]), "excluded by": BY["prefilter"],
                     "reason": "; ".join(prefilter_reasons(r["prefilter_reasons"])) or "stopped",
                     "verdict": r["verdict"] or "unreviewed", "overridden": False,
                     "in export": "yes, flagged (accepted by a reviewer)" if accepted else "only if accepted",
                     "kind": "prefilter", "check_id": None})
    for r in store.rows("""SELECT c.id AS check_id, c.generation_id, c.kind, c.detail, c.overridden, r.verdict
                           FROM (SELECT * FROM checks
                                 QUALIFY row_number() OVER (PARTITION BY generation_id, kind ORDER BY id DESC) = 1) c
                           LEFT JOIN reviews r ON r.generation_id = c.generation_id
                           WHERE NOT c.passed ORDER BY c.generation_id, c.kind"""):
        overridden = bool(r["overridden"])
        rows.append({"example": int(r["generation_id"]), "excluded by": BY.get(r["kind"], r["kind"]),
                     "reason": check_reason(r["kind"], r["detail"]), "verdict": r["verdict"] or "unreviewed",
                     "overridden": overridden, "in export": "yes (overridden)" if overridden else "no",
                     "kind": r["kind"], "check_id": int(r["check_id"])})
    return pd.DataFrame(rows, columns=COLUMNS)


def accepted_blocked(store: Store) -> pd.DataFrame:
    """Examples a reviewer accepted that a failing, not overridden check would leave out of the export."""
    ex = automatic_exclusions(store)
    return ex[(ex["verdict"] == "accepted") & ex["check_id"].notna() & ~ex["overridden"].astype(bool)] \
        .reset_index(drop=True)


def unconfirmed(store: Store) -> pd.DataFrame:
    """`accepted_blocked` rows nobody has confirmed yet (a new check run asks again)."""
    blocked = accepted_blocked(store)
    done = set(store.get_ui_state(CONFIRMED_KEY, []) or [])
    return blocked[~blocked["check_id"].astype(int).isin(done)].reset_index(drop=True) if not blocked.empty \
        else blocked


def confirm_exclusions(store: Store, check_ids: list[int], actor: str | None = None) -> None:
    """A person agrees that these failing checks leave the accepted examples out of the export."""
    team.authorize(store, actor, "checks", target="exclusions", audit_allowed=False)   # audited below
    done = sorted(set(store.get_ui_state(CONFIRMED_KEY, []) or []) | {int(c) for c in check_ids})
    store.set_ui_state(CONFIRMED_KEY, done)
    store.audit("confirm_exclusion", "checks", ",".join(str(int(c)) for c in check_ids), actor=actor)
