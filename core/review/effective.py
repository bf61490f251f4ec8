"""The verdict that counts: a human accept/reject overrides the judge's overall.

The one definition is the `review_effective` view (frozen in core/migrations/003_review_views.sql);
`effective_verdict_sql` spells the same CASE for a query that joins the tables itself, and a test
checks the two agree on every example.
"""
from __future__ import annotations

from core.store import Store


def effective_verdict_sql(judgment: str = "j", review: str = "r") -> str:
    """SQL for the verdict that counts: the human's accept/reject, else the judge's overall.

    'accepted' | 'rejected' | NULL (neither judged nor decided). Use it with a LEFT JOIN of
    `latest_judgments` AS judgment and `reviews` AS review — or just query the `review_effective` view.
    """
    return (f"CASE WHEN {review}.verdict IN ('accepted', 'rejected') THEN {review}.verdict "
            f"WHEN {judgment}.overall THEN 'accepted' "
            f"WHEN NOT {judgment}.overall THEN 'rejected' END")


def effective_verdicts(store: Store) -> dict[int, tuple[str | None, str | None]]:
    """generation_id -> (effective_verdict, decided_by) from the `review_effective` view;
    decided_by is 'human', 'judge' or None (neither)."""
    rows = store.execute("SELECT generation_id, effective_verdict, decided_by FROM review_effective").fetchall()
    return {int(g): (v, by) for g, v, by in rows}
