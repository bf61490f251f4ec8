"""Small reads of the corpus the pages need: counts, one snippet, ids to work on.

(The Corpus page's own queries — overview, search, rejections — are in core/ingest/browse.py.)
"""
from __future__ import annotations

from core.store import Store

_SNIPPET_COLUMNS = "id, kind, func_name, repo, path, language, source, code, start_line, end_line"


def count_snippets(store: Store) -> int:
    return int(store.scalar("SELECT count(*) FROM snippets") or 0)


def get_snippet(store: Store, snippet_id: str) -> dict | None:
    """One snippet: its code, language and where it came from (None if there is no such id)."""
    return store.one(f"SELECT {_SNIPPET_COLUMNS} FROM snippets WHERE id = ?", [snippet_id])


def first_snippet_ids(store: Store, limit: int, seeds_only: bool = False) -> list[str]:
    """The first `limit` snippet ids in id order (only OSS-Instruct seeds when `seeds_only`)."""
    where = "WHERE kind = 'seed' " if seeds_only else ""
    return [r[0] for r in store.execute(f"SELECT id FROM snippets {where}ORDER BY id LIMIT ?", [limit]).fetchall()]


def seed_snippet_ids(store: Store) -> list[str]:
    """Every OSS-Instruct seed's id, in id order."""
    return [r[0] for r in store.execute("SELECT id FROM snippets WHERE kind = 'seed' ORDER BY id").fetchall()]


def preview_snippet_ids(store: Store, seeds_first: bool, limit: int = 50) -> list[str]:
    """Ids to preview a prompt on: seeds first (or functions first), then by id."""
    return [r[0] for r in store.execute(
        "SELECT id FROM snippets ORDER BY (kind = 'seed') = ? DESC, id LIMIT ?", [seeds_first, limit]).fetchall()]
