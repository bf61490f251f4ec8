"""Read-side queries for the Corpus page: counts, length histogram, rejects, search."""
from __future__ import annotations

from typing import Any

import pandas as pd

from core.store import Store


def overview(store: Store) -> dict:
    row = store.one_row("""SELECT count(*) AS snippets,
                              count(*) FILTER (WHERE kind = 'function') AS functions,
                              count(*) FILTER (WHERE kind = 'seed') AS seeds,
                              count(DISTINCT language) AS languages,
                              count(DISTINCT source) AS sources
                       FROM snippets""")
    rej = store.one_row("""SELECT count(*) FILTER (WHERE kind = 'filtered') AS filtered,
                              count(*) FILTER (WHERE kind = 'error') AS errors FROM ingest_errors""")
    dups = duplicate_counts(store)
    return {**{k: int(v or 0) for k, v in row.items()}, "filtered": int(rej["filtered"] or 0),
            "errors": int(rej["errors"] or 0), **dups}


def duplicate_counts(store: Store) -> dict:
    """`duplicates`: records dropped as exact copies of another record of the same sources, each
    source list counted once (its largest run), so re-ingesting a source does not add them up again;
    `already_present`: records the newest ingest read that the corpus already had."""
    row = store.one_row("""
        WITH per_source AS (
            SELECT max(duplicates - coalesce(already_present, 0)) AS within
            FROM ingests GROUP BY CAST(sources AS VARCHAR))
        SELECT (SELECT coalesce(sum(within), 0) FROM per_source) AS duplicates,
               (SELECT coalesce(already_present, 0) FROM ingests ORDER BY id DESC LIMIT 1) AS already_present""")
    return {"duplicates": int(row["duplicates"] or 0), "already_present": int(row["already_present"] or 0)}


def per_language(store: Store) -> pd.DataFrame:
    return store.df("""WITH c AS (SELECT language, kind, count(*) AS n FROM snippets GROUP BY language, kind)
                       SELECT language, kind, n FROM c
                       ORDER BY sum(n) OVER (PARTITION BY language) DESC, language, kind""")


def per_source(store: Store) -> pd.DataFrame:
    return store.df("""SELECT source, source_kind, count(*) FILTER (WHERE kind = 'function') AS functions,
                              count(*) FILTER (WHERE kind = 'seed') AS seeds, count(DISTINCT language) AS languages
                       FROM snippets GROUP BY ALL ORDER BY functions + seeds DESC""")


def length_histogram(store: Store, bin_chars: int = 25) -> pd.DataFrame:
    """Counts per (language, length bin), binned in SQL so it scales to big corpora."""
    return store.df(f"""SELECT language, (n_chars // {int(bin_chars)}) * {int(bin_chars)} AS n_chars, count(*) AS n
                        FROM snippets GROUP BY ALL ORDER BY 2""")


def rejection_counts(store: Store) -> pd.DataFrame:
    return store.df("""SELECT kind, reason, count(*) AS n FROM ingest_errors GROUP BY ALL ORDER BY n DESC""")


def rejections(store: Store, reasons: list[str] | None = None, limit: int = 500) -> pd.DataFrame:
    sql = "SELECT kind, reason, source, location, detail, ingest_id FROM ingest_errors"
    params: list = []
    if reasons:
        sql += " WHERE list_contains(?, reason)"
        params.append(list(reasons))
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(int(limit))
    return store.df(sql, params)


def search(store: Store, text: str = "", languages: list[str] | None = None, kinds: list[str] | None = None,
           limit: int = 200) -> pd.DataFrame:
    """Snippets whose name, path, docstring or code contain `text` (case-insensitive)."""
    where: list[str] = []
    params: list[Any] = []
    if text.strip():
        # % and _ typed by the user are literal characters, not wildcards.
        like = "%" + text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append("(" + " OR ".join(f"{c} ILIKE ? ESCAPE '\\'" for c in ("func_name", "path", "docstring", "code"))
                     + ")")
        params += [like] * 4
    if languages:
        where.append("list_contains(?, language)")
        params.append(list(languages))
    if kinds:
        where.append("list_contains(?, kind)")
        params.append(list(kinds))
    sql = ("SELECT id, kind, language, func_name, path, repo, n_chars, start_line, end_line FROM snippets"
           + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY (func_name IS NULL), func_name, path LIMIT ?")
    params.append(int(limit))
    return store.df(sql, params)


def snippet(store: Store, snippet_id: str) -> dict | None:
    return store.one("SELECT * FROM snippets WHERE id = ?", [snippet_id])


def history(store: Store, limit: int = 20) -> pd.DataFrame:
    return store.df("""SELECT id, started_at, finished_at, status, sources, format, ingested,
                              duplicates - coalesce(already_present, 0) AS duplicates, already_present,
                              filtered, errors FROM ingests ORDER BY id DESC LIMIT ?""", [limit])


def languages(store: Store) -> list[str]:
    return [r["language"] for r in store.rows("SELECT DISTINCT language FROM snippets ORDER BY 1")]
