"""The pool a selection is drawn from: embedded snippets, optionally limited to clusters of a map
and/or a set of ids, and an existing selection's items as centres within and outside that pool."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.errors import ShoalError
from core.store import Store


@dataclass
class Candidates:
    """The pool a selection is drawn from: snippet ids, their vectors, and their clusters."""
    ids: list[str]
    X: np.ndarray
    clusters: np.ndarray | None  # cluster per candidate (None when no map is used)
    model: str
    map_id: int | None


def load_candidates(store: Store, model: str | None = None, map_id: int | None = None,
                    clusters: Sequence[int] | None = None, ids: Sequence[str] | None = None) -> Candidates:
    """Embedded snippets, optionally restricted to clusters of a map and/or a set of ids."""
    from core.embed.run import load_embeddings
    from core.maps.build import get_map

    if map_id is not None or clusters:
        m = get_map(store, map_id)  # latest map when map_id is None
        map_id = int(m["id"])
        if model is None:
            model = m["model"]
    emb_ids, X, model = load_embeddings(store, model)
    labels = None
    if map_id is not None:
        pts = store.df("SELECT snippet_id, cluster FROM map_points WHERE map_id = ?", [map_id])
        cl = dict(zip(pts["snippet_id"], pts["cluster"].astype(int)))
        keep = [j for j, s in enumerate(emb_ids) if s in cl]
        emb_ids = [emb_ids[j] for j in keep]
        X = X[keep]
        labels = np.array([cl[s] for s in emb_ids], dtype=np.int64)
        if clusters:
            wanted = {int(c) for c in clusters}
            unknown = wanted - set(labels.tolist())
            if unknown:
                raise ShoalError(f"Map {map_id} has no cluster {sorted(unknown)}; "
                                 f"its clusters are {sorted(set(labels.tolist()))}.")
            mask = np.isin(labels, list(wanted))
            emb_ids = [s for s, k in zip(emb_ids, mask) if k]
            X, labels = X[mask], labels[mask]
    if ids is not None:
        wanted_ids = set(ids)
        mask = np.array([s in wanted_ids for s in emb_ids], dtype=bool)
        if not mask.any():
            raise ShoalError("None of the given snippet ids has an embedding in this pool.")
        emb_ids = [s for s, k in zip(emb_ids, mask) if k]
        X = X[mask]
        labels = labels[mask] if labels is not None else None
    if not emb_ids:
        raise ShoalError("No candidate snippets: the chosen clusters or ids are empty.")
    return Candidates(emb_ids, X, labels, model, map_id)


def base_centres(store: Store, cands: Candidates, base_ids: Sequence[str]) -> tuple[list[int], np.ndarray | None]:
    """An existing selection's items as centres: (positions in the pool of those inside it, vectors
    of those outside it, None when there are none)."""
    from core.embed.run import load_embeddings

    pos = {s: j for j, s in enumerate(cands.ids)}
    already = [pos[s] for s in base_ids if s in pos]
    outside = [s for s in base_ids if s not in pos]
    extra = None
    if outside:
        o_ids, o_X, _ = load_embeddings(store, cands.model, snippet_ids=outside)
        extra = o_X if len(o_ids) else None
    return already, extra
