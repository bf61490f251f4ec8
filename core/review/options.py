"""Headless review status (the CLI's `review --status`) and the values for the filter widgets."""
from __future__ import annotations

from core.maps.build import latest_map_id
from core.review.agreement import agreement
from core.store import Store


def review_status(store: Store) -> dict:
    """Counts per task by human status and effective verdict, plus agreement."""
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


def _cluster_options(store: Store, map_id: int | None) -> list[dict]:
    if map_id is None:
        return []
    clusters = store.rows(
        "SELECT c.cluster, coalesce(c.label, '') AS label, c.size FROM clusters c "
        "WHERE c.map_id = ? ORDER BY c.cluster", [map_id])
    if clusters:
        return clusters
    return [{"cluster": int(r[0]), "label": "", "size": None} for r in store.execute(
        "SELECT DISTINCT cluster FROM map_points WHERE map_id = ? ORDER BY 1", [map_id]).fetchall()]


def _column(store: Store, sql: str) -> list:
    return [r[0] for r in store.execute(sql).fetchall()]


def filter_options(store: Store) -> dict:
    """Values for the filter widgets (small distinct queries)."""
    map_id = latest_map_id(store)
    return {
        "tasks": _column(store, "SELECT DISTINCT task FROM generations ORDER BY 1"),
        "languages": _column(
            store, "SELECT DISTINCT l FROM (SELECT s.language AS l FROM generations g JOIN snippets s ON s.id = g.snippet_id"
                   " UNION SELECT target_language FROM generations) WHERE l IS NOT NULL ORDER BY 1"),
        "map_id": map_id,
        "clusters": _cluster_options(store, map_id),
        "selections": store.rows("SELECT id, name, n_items FROM selections ORDER BY id DESC"),
        "rules": _column(store, """
            SELECT DISTINCT (e->>'rule') FROM (SELECT unnest(CAST(rules AS JSON[])) AS e FROM judgments
                                              WHERE json_type(rules) = 'ARRAY') WHERE (e->>'rule') IS NOT NULL
            ORDER BY 1 LIMIT 500"""),
        "reviewers": _column(store, "SELECT DISTINCT reviewer FROM reviews WHERE reviewer IS NOT NULL ORDER BY 1"),
    }
