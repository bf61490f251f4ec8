"""How much a selection's coverage beats chance: several random draws of the same budget.

One random baseline is one draw; at small budgets its max distance swings a lot from draw to
draw, so a single number cannot tell a real gain from luck. This draws `draws` random picks
(and, with a map, stratified ones) from the same pool, with the selection's base items as
centres (an extended selection), and reports each method's mean and range. `select` measures
it on the pool it already holds and stores it with the selection; `coverage_spread` measures
it afterwards for a selection stored without one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from core.errors import ShoalError
from core.select.baselines import coverage_of_picks, random_sample, stratified_sample
from core.select.candidates import Candidates, base_centres, load_candidates
from core.select.stored import selection_items
from core.store import Store

SPREAD_DRAWS = 5


def _spread(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values))}


def draw_spread(cands: Candidates, budget: int, already: Sequence[int], extra: np.ndarray | None,
                selection: dict, draws: int = SPREAD_DRAWS, first_seed: int = 1) -> dict:
    """{"draws", "budget", "candidates", "selection": {max, mean}, "random": {max, mean}, "stratified": ...}.

    `selection` is the selection's own coverage (coverage_mean, coverage_max); each method entry holds
    {"max": spread, "mean": spread} over the draws (seeds first_seed, first_seed + 1, ...), where
    spread is {"mean", "min", "max"}. Stratified draws only when the pool has clusters.
    """
    if draws < 1:
        raise ShoalError("At least one random draw is needed.")
    budget = min(budget, len(cands.ids) - len(already))
    out = {"draws": draws, "budget": budget, "candidates": len(cands.ids),
           "selection": {"max": float(selection["coverage_max"]), "mean": float(selection["coverage_mean"])}}
    samplers = {"random": lambda s: random_sample(len(cands.ids), budget, seed=s, exclude=already)}
    labels = cands.clusters
    if labels is not None:
        samplers["stratified"] = lambda s: stratified_sample(labels, budget, seed=s, exclude=already)
    for name, draw in samplers.items():
        covs = [coverage_of_picks(cands.X, already, draw(first_seed + k), extra) for k in range(draws)]
        out[name] = {"max": _spread([c["coverage_max"] for c in covs]),
                     "mean": _spread([c["coverage_mean"] for c in covs])}
    return out


def coverage_spread(store: Store, selection_id: int, *, map_id: int | None = None,
                    clusters: Sequence[int] | None = None, ids: Sequence[str] | None = None,
                    draws: int = SPREAD_DRAWS, first_seed: int = 1) -> dict:
    """`draw_spread` for a stored selection, its pool given the way `core.select.run.select` was
    called (map, clusters, ids); for selections stored without a spread."""
    sel = store.one("SELECT * FROM selections WHERE id = ?", [int(selection_id)])
    if sel is None:
        raise ShoalError(f"No selection with id {selection_id}.")
    if draws < 1:
        raise ShoalError("At least one random draw is needed.")
    cands = load_candidates(store, model=sel["model"], map_id=map_id, clusters=clusters, ids=ids)
    items = selection_items(store, int(sel["id"]))
    base = items[:max(0, len(items) - int(sel["budget"]))]        # an extended selection keeps its base first
    already, extra = base_centres(store, cands, base)
    return draw_spread(cands, int(sel["budget"]), already, extra, sel, draws, first_seed)


def _fmt(s: dict) -> str:
    return f"{s['mean']:.4f} ({s['min']:.4f}–{s['max']:.4f})"


def spread_rows(spread: dict) -> list[dict]:
    """The spread as table rows (method, max distance, mean distance), figures as text: the selection's
    own, then each method's mean (min–max) over the draws. The Map page and `shoal select` show these."""
    rows = [{"method": "this selection", "max distance": f"{spread['selection']['max']:.4f}",
             "mean distance": f"{spread['selection']['mean']:.4f}"}]
    for m in ("random", "stratified"):
        if m in spread:
            rows.append({"method": f"{m} × {spread['draws']} draws", "max distance": _fmt(spread[m]["max"]),
                         "mean distance": _fmt(spread[m]["mean"])})
    return rows


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
