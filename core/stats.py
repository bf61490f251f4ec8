"""Whole-database counts for `shoal stats` and the home page."""
from __future__ import annotations

from core.store import Store


def corpus_stats(store: Store) -> dict:
    langs = store.rows("SELECT language, count(*) AS n FROM snippets GROUP BY 1 ORDER BY 2 DESC")
    sources = store.rows("SELECT source_kind, kind, count(*) AS n FROM snippets GROUP BY 1, 2 ORDER BY 3 DESC")
    rejections = store.rows(
        "SELECT kind, reason, count(*) AS n FROM ingest_errors GROUP BY 1, 2 ORDER BY 3 DESC")
    return {
        "db": str(store.path),
        "tables": store.table_counts(),
        "languages": {r["language"]: int(r["n"]) for r in langs},
        "sources": [{**r, "n": int(r["n"])} for r in sources],
        "rejections": [{**r, "n": int(r["n"])} for r in rejections],
    }
