"""Make a selection: pick `budget` snippets from a pool by a method (k-center greedy, exact or
fast, or a baseline sampler), measure its coverage next to the baselines' and the spread of
random draws, and store it by name.

The parts: core.select.candidates (the pool), core.select.kcenter (the greedy),
core.select.baselines (samplers and coverage), core.select.spread (random draws),
core.select.stored (saving and reading selections).
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from core.errors import ShoalError
from core.progress import ProgressFn
from core.select.baselines import coverage_of_picks, random_sample, stratified_sample
from core.select.candidates import Candidates, base_centres, load_candidates
from core.select.kcenter import kcenter_greedy, kcenter_greedy_fast
from core.select.spread import draw_spread
from core.select.stored import name_taken, save_selection, selection_id, selection_ids
from core.store import Store
from core.team import members as team

METHODS = ("kcenter", "kcenter_fast", "random", "stratified")
BASELINES = ("random", "stratified")  # measured next to every new selection: one pass over the pool each
EXACT_BASELINE_WORK = 20_000_000  # candidates x budget up to which exact k-center is shown too (about a second)
SPREAD_WORK = 200_000_000  # candidates x budget up to which select() draws the spread (10 coverage passes:
                           # about half a minute on 2 cores); above it the Map page offers to measure it


@dataclass
class SelectionResult:
    id: int
    name: str
    method: str
    budget: int
    n_items: int
    n_candidates: int
    coverage_mean: float | None
    coverage_max: float | None
    seconds: float
    model: str
    map_id: int | None
    snippet_ids: list[str] = field(repr=False, default_factory=list)
    baselines: dict = field(default_factory=dict)
    spread: dict = field(default_factory=dict)   # random (and stratified) draws: core.select.spread

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("snippet_ids")
        return d


def pick_with_distances(method: str, cands: Candidates, budget: int, already: list[int],
                        extra: np.ndarray | None, seed: int, progress: ProgressFn | None = None,
                        cancel: threading.Event | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices into `cands` chosen by `method`, excluding `already`; each candidate's distance
    to its nearest centre when the method computed them on the way, else None)."""
    if method in ("kcenter", "kcenter_fast"):
        fn = kcenter_greedy if method == "kcenter" else kcenter_greedy_fast
        return fn(cands.X, budget, already=already, extra_centres=extra, seed=seed, progress=progress,
                  cancel=cancel)
    if method == "random":
        return random_sample(len(cands.X), budget, seed=seed, exclude=already), None
    if method == "stratified":
        if cands.clusters is None:
            raise ShoalError("Stratified sampling needs a map (clusters): build one with `shoal map`.")
        return stratified_sample(cands.clusters, budget, seed=seed, exclude=already), None
    raise ShoalError(f"Unknown selection method {method!r}; use one of {', '.join(METHODS)}.")


def pick(method: str, cands: Candidates, budget: int, already: list[int], extra: np.ndarray | None,
         seed: int, progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> np.ndarray:
    """Indices into `cands` chosen by `method` (excluding `already`)."""
    return pick_with_distances(method, cands, budget, already, extra, seed, progress, cancel)[0]


def baseline_methods(method: str, n_candidates: int, budget: int, has_clusters: bool) -> list[str]:
    """The baselines measured next to a `method` selection: random, stratified (with a map) and
    exact k-center only when it is cheap; never the method itself."""
    out = [m for m in BASELINES if m != method and (m != "stratified" or has_clusters)]
    if method != "kcenter" and n_candidates * budget <= EXACT_BASELINE_WORK:
        out.append("kcenter")
    return out




def _checked_request(store: Store, name: str, budget: int, method: str, replace: bool) -> tuple[str, int, int | None]:
    """(the name, the budget, the id of the selection it replaces) once the request makes sense."""
    name = (name or "").strip()
    if not name:
        raise ShoalError("Give the selection a name.")
    if method not in METHODS:
        raise ShoalError(f"Unknown selection method {method!r}; use one of {', '.join(METHODS)}.")
    if budget is None or int(budget) <= 0:
        raise ShoalError("The budget must be a positive number of snippets.")
    existing = selection_id(store, name)
    if existing is not None and not replace:
        raise ShoalError(name_taken(name))
    return name, int(budget), existing


def _baselines_and_spread(method: str, cands: Candidates, budget: int, already: list[int],
                          extra: np.ndarray | None, seed: int, cov: dict) -> tuple[dict, dict, dict]:
    """(each baseline's coverage, the spread of random draws, their timings): each baseline one
    pass over the pool (exact k-center only when cheap), never a second selection."""
    t0 = time.perf_counter()
    base_cov = {}
    for bm in baseline_methods(method, len(cands.ids), budget, cands.clusters is not None):
        idx, d = pick_with_distances(bm, cands, budget, already, extra, seed)
        base_cov[bm] = coverage_of_picks(cands.X, already, idx, extra, d)
    t1 = time.perf_counter()
    spread = draw_spread(cands, budget, already, extra, cov) if len(cands.ids) * budget <= SPREAD_WORK else {}
    timings = {"baseline_seconds": round(t1 - t0, 4), "spread_seconds": round(time.perf_counter() - t1, 4)}
    return base_cov, spread, timings


def select(store: Store, name: str, budget: int, method: str = "kcenter", model: str | None = None,
           map_id: int | None = None, clusters: Sequence[int] | None = None, ids: Sequence[str] | None = None,
           extend: str | None = None, seed: int = 0, replace: bool = False, baselines: bool = True,
           actor: str | None = None, progress: ProgressFn | None = None,
           cancel: threading.Event | None = None) -> SelectionResult:
    """Choose `budget` snippets from the candidates and store them as selection `name`.

    `extend`: the name of an existing selection whose items are kept first and act as
    centres. Coverage is measured over the candidates against every item of the result
    (k-center computes it on the way); with `baselines`, the random and (with a map)
    stratified baselines of the same budget are measured too, one pass each, plus exact
    k-center when it is cheap (`baseline_methods`); they are not stored as selections. So is
    the spread of several random draws (core.select.spread), stored with the selection.
    """
    team.authorize(store, actor, "select", target=name, audit_allowed=False)    # a selection is audited below
    name, budget, existing = _checked_request(store, name, budget, method, replace)
    if map_id is None and method == "stratified":
        from core.maps.build import get_map
        map_id = int(get_map(store)["id"])
    cands = load_candidates(store, model=model, map_id=map_id, clusters=clusters, ids=ids)
    base_ids = selection_ids(store, extend) if extend else []
    already, extra = base_centres(store, cands, base_ids)
    t0 = time.perf_counter()
    chosen, min_d = pick_with_distances(method, cands, budget, already, extra, seed, progress, cancel)
    seconds = time.perf_counter() - t0
    all_ids = base_ids + [cands.ids[i] for i in chosen]
    cov = coverage_of_picks(cands.X, already, chosen, extra, min_d)
    base_cov, spread, timings = (_baselines_and_spread(method, cands, budget, already, extra, seed, cov)
                                 if baselines else ({}, {}, {"baseline_seconds": 0.0}))
    params = {"seed": seed, "clusters": sorted(int(c) for c in clusters) if clusters else None,
              "n_ids": len(ids) if ids is not None else None, "extend": extend,
              "seconds": round(seconds, 4), "baselines": base_cov, **timings}
    sel_id = save_selection(store, name=name, method=method, map_id=cands.map_id, model=cands.model, params=params,
                            budget=budget, snippet_ids=all_ids, n_candidates=len(cands.ids), cov=cov,
                            spread=spread, replaces=existing)
    store.audit("select", "selection", sel_id, after={"name": name, "method": method, "budget": budget,
                                                       "n_items": len(all_ids)}, actor=actor)
    return SelectionResult(int(sel_id), name, method, budget, len(all_ids), len(cands.ids),
                           cov["coverage_mean"], cov["coverage_max"], seconds, cands.model, cands.map_id,
                           all_ids, base_cov, spread)
