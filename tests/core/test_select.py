"""k-center greedy against a brute-force reference; baselines; stored selections; the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from core import select as sel
from core.errors import ShoalError
from tests.core.test_maps import make_mapped_store


def brute_force_kcenter(X: np.ndarray, budget: int, first: int | None = None, already=(), extra=None):
    """Literal definition, O(k^2 n) in float64: each step recomputes every point's distance to
    every centre and takes the farthest unpicked point (lowest index on ties)."""
    X64 = X.astype(np.float64)
    centres = [X64[i] for i in already] + ([] if extra is None else list(extra.astype(np.float64)))
    picked = set(already)
    out = []
    for step in range(budget):
        if not centres:
            i = first
        else:
            C = np.array(centres)
            d = np.sqrt(((X64[:, None, :] - C[None, :, :]) ** 2).sum(-1)).min(axis=1)
            d[list(picked)] = -1
            i = int(np.argmax(d))
        out.append(i)
        picked.add(i)
        centres.append(X64[i])
    return out


def clustered(n=300, d=48, k=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3
    X = centres[rng.integers(k, size=n)] + rng.normal(size=(n, d))
    # a low-rank tilt like real embeddings (so the PCA bound prunes)
    return (X @ np.diag(np.linspace(2, 0.1, d))).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_kcenter_matches_brute_force(seed):
    X = clustered(seed=seed)
    first = int(np.random.default_rng(seed).integers(len(X)))
    picks, min_d = sel.kcenter_greedy(X, 40, seed=seed)
    assert picks[0] == first
    assert list(picks) == brute_force_kcenter(X, 40, first=first)
    # the returned distances are the true nearest-centre distances
    ref = np.sqrt(((X[:, None, :] - X[picks][None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(min_d, ref, rtol=1e-5, atol=1e-5)


def test_exact_kcenter_extends_existing_selection_and_outside_centres():
    X = clustered(n=200, seed=5)
    extra = clustered(n=3, seed=9)
    picks, _ = sel.kcenter_greedy(X, 25, already=[3, 50, 7], extra_centres=extra)
    assert list(picks) == brute_force_kcenter(X, 25, already=[3, 50, 7], extra=extra)
    assert not {3, 50, 7} & set(picks.tolist())


def test_duplicates_and_full_budget():
    X = np.repeat(clustered(n=10, d=8, seed=3), 3, axis=0)  # every point three times
    picks, _ = sel.kcenter_greedy(X, 30, first=0)
    assert sorted(picks.tolist()) == list(range(30))
    assert list(picks) == brute_force_kcenter(X, 30, first=0)
    with pytest.raises(ShoalError, match="larger than"):
        sel.kcenter_greedy(X, 31)


def test_fast_kcenter_is_close_to_exact():
    X = clustered(n=300, d=96, seed=4)
    exact, _ = sel.kcenter_greedy(X, 30, seed=0)
    fast, _ = sel.kcenter_greedy_fast(X, 30, seed=0)
    rnd = sel.random_sample(len(X), 30, seed=0)
    c_exact, c_fast, c_rnd = (sel.coverage(X, X[p]) for p in (exact, fast, rnd))
    assert c_fast["coverage_max"] <= 1.3 * c_exact["coverage_max"]
    assert c_exact["coverage_max"] < c_rnd["coverage_max"]
    assert len(set(fast.tolist())) == 30


def test_coverage_and_baselines():
    X = clustered(n=120, d=16, seed=7)
    idx = np.array([0, 5, 9])
    ref = np.sqrt(((X[:, None, :] - X[idx][None]) ** 2).sum(-1)).min(1)
    cov = sel.coverage(X, X[idx])
    assert cov["coverage_mean"] == pytest.approx(ref.mean(), rel=1e-4)
    assert cov["coverage_max"] == pytest.approx(ref.max(), rel=1e-4)
    labels = np.array([0] * 60 + [1] * 40 + [2] * 20)
    strat = sel.stratified_sample(labels, 12, seed=1)
    assert np.bincount(labels[strat]).tolist() == [6, 4, 2]
    assert len(set(sel.random_sample(120, 50, seed=3).tolist())) == 50


def test_select_stores_named_selection_restricted_to_clusters(store):
    map_id = make_mapped_store(store)
    clusters = store.df("SELECT cluster, size FROM clusters WHERE map_id = ? ORDER BY cluster", [map_id])
    two = clusters["cluster"].tolist()[:2]
    pool = int(clusters["size"].iloc[:2].sum())
    r = sel.select(store, name="core-20", budget=20, method="kcenter", map_id=map_id, clusters=two)
    assert r.n_items == 20 and r.n_candidates == pool
    assert set(r.baselines) == {"random", "stratified"}
    assert r.coverage_max < r.baselines["random"]["coverage_max"]
    stored = store.one("SELECT * FROM selections WHERE name = 'core-20'")
    assert stored["n_items"] == 20 and stored["method"] == "kcenter" and stored["map_id"] == map_id
    items = store.df("SELECT i.snippet_id, p.cluster FROM selection_items i JOIN map_points p "
                     "ON p.snippet_id = i.snippet_id AND p.map_id = ? WHERE i.selection_id = ? ORDER BY rank",
                     [map_id, r.id])
    assert items["snippet_id"].tolist() == r.snippet_ids
    assert set(items["cluster"]) <= set(two)
    # the stored picks are the brute-force picks on the same candidate pool
    cands = sel.load_candidates(store, map_id=map_id, clusters=two)
    first = int(np.random.default_rng(0).integers(len(cands.ids)))
    assert [cands.ids[i] for i in brute_force_kcenter(cands.X, 20, first=first)] == r.snippet_ids

    with pytest.raises(ShoalError, match="already exists"):
        sel.select(store, name="core-20", budget=5)
    ext = sel.select(store, name="core-30", budget=10, map_id=map_id, clusters=two, extend="core-20")
    assert ext.n_items == 30 and ext.snippet_ids[:20] == r.snippet_ids
    table = sel.compare_coverage(store, ext.id)
    assert table["method"].tolist()[0] == "kcenter (this selection)"
    with pytest.raises(ShoalError, match="no cluster"):
        sel.select(store, name="bad", budget=5, map_id=map_id, clusters=[999])


def test_cli_select_json(tmp_path):
    from core.cli import app
    from core.store import open_store
    db = tmp_path / "cli.duckdb"
    with open_store(db) as s:
        make_mapped_store(s)
    runner = CliRunner()
    res = runner.invoke(app, ["--db", str(db), "select", "--budget", "15", "--clusters", "0,1",
                              "--name", "cli-pick", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_items"] == 15 and out["method"] == "kcenter"
    assert out["coverage_max"] < out["baselines"]["random"]["coverage_max"]
    res = runner.invoke(app, ["--db", str(db), "select", "--budget", "5", "--name", "cli-pick"])
    assert res.exit_code == 1 and "already exists" in res.output
    res = runner.invoke(app, ["--db", str(db), "select", "--budget", "5", "--name", "x", "--clusters", "a,b"])
    assert res.exit_code == 1
