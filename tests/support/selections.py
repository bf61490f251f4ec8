"""Manual selections for page tests: named lists of snippet ids, as the Map page would save them."""
from __future__ import annotations

from core.store import Store


def add_selection(store: Store, name: str, snippet_ids: list[str]) -> int:
    sel = store.scalar("INSERT INTO selections(name, method, n_items) VALUES (?, 'manual', ?) RETURNING id",
                       [name, len(snippet_ids)])
    for rank, sid in enumerate(snippet_ids):
        store.execute("INSERT INTO selection_items VALUES (?, ?, ?)", [sel, sid, rank])
    return int(sel)
