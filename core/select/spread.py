"""How much a selection's coverage beats chance: several random draws of the same budget.

One random baseline is one draw; at small budgets its max distance swings a lot from draw to
draw, so a single number cannot tell a real gain from luck. This draws `draws` random picks
(and, with a map, stratified ones) from the same pool, with the selection's base items as
centres (an extended selection), and reports each method's mean and range.
Uses core.select.run's own functions (pool loading, samplers, coverage), nothing re-implemented.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from core.errors import ShoalError
from core.store import Store


def _spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def coverage_spread(store: Store, selection_id: int, *, map_id: int | None = None,
                    clusters: Sequence[int] | None = None, ids: Sequence[str] | None = None,
                    draws: int = 5, first_seed: int = 1) -> dict:
    """{"draws", "budget", "candidates", "selection": {...}, "random": {max, mean}, "stratified": ...}.

    The pool is given the way `core.select.run.select` was called (map, clusters, ids); each
    method entry holds {"max": spread, "mean": spread} over the draws, where spread is
    {"mean", "min", "max"}.
    """
    from core.embed.run import load_embeddings
    from core.select.run import coverage, load_candidates, random_sample, selection_ids, stratified_sample

    sel = store.one("SELECT * FROM selections WHERE id = ?", [int(selection_id)])
    if sel is None:
        raise ShoalError(f"No selection with id {selection_id}.")
    if draws < 1:
        raise ShoalError("At least one random draw is needed.")
    cands = load_candidates(store, model=sel["model"], map_id=map_id, clusters=clusters, ids=ids)
    items = selection_ids(store, sel["name"])
    budget = int(sel["budget"])
    base = items[:max(0, len(items) - budget)]        # an extended selection keeps its base first
    pos = {s: j for j, s in enumerate(cands.ids)}
    already = np.array([pos[s] for s in base if s in pos], dtype=np.int64)
    outside = [s for s in base if s not in pos]
    extra = load_embeddings(store, cands.model, snippet_ids=outside)[1] if outside else None
    budget = min(budget, len(cands.ids) - len(already))

    def measure(idx: np.ndarray) -> dict:
        centres = cands.X[np.concatenate([already, idx])]
        if extra is not None and len(extra):
            centres = np.vstack([centres, extra])
        return coverage(cands.X, centres)

    out = {"draws": draws, "budget": budget, "candidates": len(cands.ids),
           "selection": {"max": float(sel["coverage_max"]), "mean": float(sel["coverage_mean"])}}
    samplers = {"random": lambda s: random_sample(len(cands.ids), budget, seed=s, exclude=already)}
    labels = cands.clusters
    if labels is not None:
        samplers["stratified"] = lambda s: stratified_sample(labels, budget, seed=s, exclude=already)
    for name, draw in samplers.items():
        covs = [measure(draw(first_seed + k)) for k in range(draws)]
        out[name] = {"max": _spread([c["coverage_max"] for c in covs]),
                     "mean": _spread([c["coverage_mean"] for c in covs])}
    return out


def gain_verdict(spread: dict) -> str:
    """One sentence: is the selection's max distance below every random draw's?"""
    r = spread.get("random")
    if not r:
        return ""
    mine, lo, hi = spread["selection"]["max"], r["max"]["min"], r["max"]["max"]
    if mine < lo:
        return (f"The selection's max distance ({mine:.3f}) is below every one of {spread['draws']} random draws "
                f"({lo:.3f}–{hi:.3f}): the gain is real at this budget.")
    if mine <= hi:
        return (f"The selection's max distance ({mine:.3f}) lies inside the range of {spread['draws']} random draws "
                f"({lo:.3f}–{hi:.3f}): at this budget it is not clearly better than chance.")
    return (f"The selection's max distance ({mine:.3f}) is above every random draw ({lo:.3f}–{hi:.3f}): "
            "random does better on this objective here.")
