"""k-center greedy against a brute-force reference; baselines; stored selections; the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from core.errors import ShoalError
from core.select import baselines, candidates, kcenter
from core.select import run as sel
from core.select import stored as stored_selections
from tests.support.maps import make_mapped_store


def brute_force_kcenter(X: np.ndarray, budget: int, first: int | None = None, already=(), extra=None):
    """Literal definition, O(k^2 n) in float64: each step recomputes every point's distance to
    every centre and takes the farthest unpicked point (lowest index on ties)."""
    X64 = X.astype(np.float64)
    centres = [X64[i] for i in already] + ([] if extra is None else list(extra.astype(np.float64)))
    picked = set(already)
    out = []
    for _step in range(budget):
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
    picks, min_d = kcenter.kcenter_greedy(X, 40, seed=seed)
    assert picks[0] == first
    assert list(picks) == brute_force_kcenter(X, 40, first=first)
    # the returned distances are the true nearest-centre distances
    ref = np.sqrt(((X[:, None, :] - X[picks][None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(min_d, ref, rtol=1e-5, atol=1e-5)


def test_exact_kcenter_extends_existing_selection_and_outside_centres():
    X = clustered(n=200, seed=5)
    extra = clustered(n=3, seed=9)
    picks, _ = kcenter.kcenter_greedy(X, 25, already=[3, 50, 7], extra_centres=extra)
    assert list(picks) == brute_force_kcenter(X, 25, already=[3, 50, 7], extra=extra)
    assert not {3, 50, 7} & set(picks.tolist())


def test_duplicates_and_full_budget():
    X = np.repeat(clustered(n=10, d=8, seed=3), 3, axis=0)  # every point three times
    picks, _ = kcenter.kcenter_greedy(X, 30, first=0)
    assert sorted(picks.tolist()) == list(range(30))
    assert list(picks) == brute_force_kcenter(X, 30, first=0)
    with pytest.raises(ShoalError, match="larger than"):
        kcenter.kcenter_greedy(X, 31)


def plain_float32_kcenter(X: np.ndarray, budget: int, first: int | None = None, already=(), extra=None):
    """The plain numpy loop in float32 (norm(X - c) per centre, argmax, lowest index on ties):
    the picks `kcenter_greedy` must reproduce exactly, and its final distances."""
    centres = [X[i] for i in already] + ([] if extra is None else list(np.asarray(extra, np.float32)))
    min_d = np.full(len(X), np.inf, dtype=np.float32)
    for c in centres:
        min_d = np.minimum(min_d, np.linalg.norm(X - c, axis=1))
    picked = np.zeros(len(X), dtype=bool)
    picked[list(already)] = True
    out = []
    for step in range(budget):
        i = first if (step == 0 and not centres) else int(np.argmax(np.where(picked, -1.0, min_d)))
        out.append(i)
        picked[i] = True
        min_d = np.minimum(min_d, np.linalg.norm(X - X[i], axis=1))
    return out, min_d


def flat_mixture(n=2000, d=64, k=40, seed=0):
    """Unit vectors around many centres in random directions, sizes and spreads varied: a flat
    PCA spectrum, roughly how sentence embeddings of code spread (no low-rank tilt)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    topic = rng.choice(k, size=n, p=rng.dirichlet(np.ones(k)))
    X = centres[topic] + rng.uniform(0.2, 0.6, size=k)[topic, None] * rng.normal(size=(n, d)) / np.sqrt(d)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


SHAPES = {
    "clustered": lambda: clustered(n=600, seed=11),
    "flat_mixture": lambda: flat_mixture(),
    "iid_gaussian": lambda: np.random.default_rng(3).normal(size=(1500, 32)).astype(np.float32),
    "offset": lambda: (np.random.default_rng(4).normal(size=(800, 24)) + 100).astype(np.float32),
    "integer_grid_ties": lambda: np.round(np.random.default_rng(5).normal(size=(1200, 6))).astype(np.float32),
    "duplicates": lambda: np.repeat(flat_mixture(n=150, d=16, k=5, seed=6), 4, axis=0),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("group_size", [8, 256])
def test_exact_kcenter_is_the_plain_float32_loop(shape, group_size):
    X = SHAPES[shape]()
    budget = min(150, len(X))
    first = int(np.random.default_rng(0).integers(len(X)))
    picks, min_d = kcenter.kcenter_greedy(X, budget, seed=0, group_size=group_size)
    ref, ref_d = plain_float32_kcenter(X, budget, first=first)
    assert list(picks) == ref
    np.testing.assert_allclose(min_d, ref_d, rtol=1e-6, atol=1e-6)
    # starting from an existing selection plus centres outside the pool
    already, extra = [5, 17, 2], X[[40, 41]] + np.float32(0.01)
    picks, _ = kcenter.kcenter_greedy(X, 60, already=already, extra_centres=extra, group_size=group_size)
    assert list(picks) == plain_float32_kcenter(X, 60, already=already, extra=extra)[0]


def test_exact_kcenter_on_a_subset_matches_brute_force():
    X = flat_mixture(n=1500, seed=8)
    subset = np.flatnonzero(np.random.default_rng(1).random(len(X)) < 0.4)
    picks, _ = kcenter.kcenter_greedy(X[subset], 50, first=3, group_size=32)
    assert list(picks) == brute_force_kcenter(X[subset], 50, first=3)


def test_fast_kcenter_beats_random_on_max_distance():
    X = flat_mixture(n=3000, d=96, k=60, seed=2)
    for budget in (20, 60, 150):
        _, d_exact = kcenter.kcenter_greedy(X, budget, seed=0)
        fast, d_fast = kcenter.kcenter_greedy_fast(X, budget, seed=0)
        assert len(set(fast.tolist())) == budget
        # the distances it returns are the true ones
        true = np.min([np.linalg.norm(X - c, axis=1) for c in X[fast]], axis=0)
        np.testing.assert_allclose(d_fast, true, rtol=1e-6, atol=1e-6)
        randoms = [baselines.coverage(X, X[baselines.random_sample(len(X), budget, seed=s)])["coverage_max"] for s in range(5)]
        assert d_fast.max() < min(randoms)
        assert d_fast.max() <= 1.10 * d_exact.max()


def test_baselines_never_include_an_expensive_exact_run():
    assert sel.baseline_methods("kcenter", 10 ** 6, 1000, True) == ["random", "stratified"]
    assert "kcenter" not in sel.baseline_methods("kcenter_fast", 200_000, 1000, True)
    assert sel.baseline_methods("kcenter_fast", 2000, 50, False) == ["random", "kcenter"]
    assert sel.baseline_methods("random", 2000, 50, True) == ["stratified", "kcenter"]


def test_fast_kcenter_is_close_to_exact():
    X = clustered(n=300, d=96, seed=4)
    exact, _ = kcenter.kcenter_greedy(X, 30, seed=0)
    fast, _ = kcenter.kcenter_greedy_fast(X, 30, seed=0)
    rnd = baselines.random_sample(len(X), 30, seed=0)
    c_exact, c_fast, c_rnd = (baselines.coverage(X, X[p]) for p in (exact, fast, rnd))
    assert c_fast["coverage_max"] <= 1.3 * c_exact["coverage_max"]
    assert c_exact["coverage_max"] < c_rnd["coverage_max"]
    assert len(set(fast.tolist())) == 30


def test_coverage_and_baselines():
    X = clustered(n=120, d=16, seed=7)
    idx = np.array([0, 5, 9])
    ref = np.sqrt(((X[:, None, :] - X[idx][None]) ** 2).sum(-1)).min(1)
    cov = baselines.coverage(X, X[idx])
    assert cov["coverage_mean"] == pytest.approx(ref.mean(), rel=1e-4)
    assert cov["coverage_max"] == pytest.approx(ref.max(), rel=1e-4)
    labels = np.array([0] * 60 + [1] * 40 + [2] * 20)
    strat = baselines.stratified_sample(labels, 12, seed=1)
    assert np.bincount(labels[strat]).tolist() == [6, 4, 2]
    assert len(set(baselines.random_sample(120, 50, seed=3).tolist())) == 50


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
    cands = candidates.load_candidates(store, map_id=map_id, clusters=two)
    first = int(np.random.default_rng(0).integers(len(cands.ids)))
    assert [cands.ids[i] for i in brute_force_kcenter(cands.X, 20, first=first)] == r.snippet_ids

    with pytest.raises(ShoalError, match="already exists"):
        sel.select(store, name="core-20", budget=5)
    ext = sel.select(store, name="core-30", budget=10, map_id=map_id, clusters=two, extend="core-20")
    assert ext.n_items == 30 and ext.snippet_ids[:20] == r.snippet_ids
    table = stored_selections.compare_coverage(store, ext.id)
    assert table["method"].tolist()[0] == "kcenter (this selection)"
    with pytest.raises(ShoalError, match="no cluster"):
        sel.select(store, name="bad", budget=5, map_id=map_id, clusters=[999])


def test_a_name_taken_while_picking_is_a_clear_error(store, monkeypatch):
    """Another tab (or a second click) saves the same name while this selection is being picked:
    DuckDB's unique key refuses the insert; core says so plainly, nothing half-saved."""
    make_mapped_store(store)
    pick = sel.pick_with_distances

    def pick_while_another_tab_saves(*args, **kwargs):
        out = pick(*args, **kwargs)
        store.execute("INSERT INTO selections(name, method, budget, n_items) VALUES ('twice', 'random', 1, 0)")
        return out
    monkeypatch.setattr(sel, "pick_with_distances", pick_while_another_tab_saves)
    with pytest.raises(ShoalError, match="A selection named “twice” already exists"):
        sel.select(store, name="twice", budget=5, baselines=False)
    assert store.scalar("SELECT count(*) FROM selections WHERE name = 'twice'") == 1
    assert store.scalar("SELECT count(*) FROM selection_items") == 0


def test_cli_select_json(tmp_path):
    from core.cli.main import app
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
    res = runner.invoke(app, ["--db", str(db), "select", "--budget", "10", "--method", "kcenter_fast",
                              "--name", "cli-fast", "--no-baselines", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["baselines"] == {}
    res = runner.invoke(app, ["--db", str(db), "select", "--budget", "5", "--name", "x", "--clusters", "a,b"])
    assert res.exit_code == 1


def test_select_stores_the_spread_of_random_draws(store):
    """`select` measures the spread of random (and stratified) draws on the pool it already holds and
    stores it with the selection: the same figures as measuring them afterwards from the store."""
    from core.select.spread import SPREAD_DRAWS, coverage_spread, spread_rows
    map_id = make_mapped_store(store)
    r = sel.select(store, name="spread-20", budget=20, map_id=map_id, clusters=[0, 1])
    assert r.spread["draws"] == SPREAD_DRAWS and r.spread["budget"] == 20
    assert r.spread["candidates"] == r.n_candidates and {"random", "stratified"} <= set(r.spread)
    assert r.spread["selection"] == {"max": r.coverage_max, "mean": r.coverage_mean}
    assert stored_selections.stored_spread(store, r.id) == r.spread
    again = coverage_spread(store, r.id, map_id=map_id, clusters=[0, 1])
    assert again["random"]["max"] == pytest.approx(r.spread["random"]["max"])
    assert again["stratified"]["mean"] == pytest.approx(r.spread["stratified"]["mean"])
    assert [row["method"] for row in spread_rows(r.spread)] == ["this selection", "random × 5 draws",
                                                                "stratified × 5 draws"]
    ext = sel.select(store, name="spread-30", budget=10, map_id=map_id, clusters=[0, 1], extend="spread-20")
    assert ext.spread["budget"] == 10            # the draws add the budget to the base, as the selection did
    assert coverage_spread(store, ext.id, map_id=map_id, clusters=[0, 1])["random"]["max"] == \
        pytest.approx(ext.spread["random"]["max"])
    bare = sel.select(store, name="no-baselines", budget=5, baselines=False)
    assert bare.spread == {} and stored_selections.stored_spread(store, bare.id) is None


def test_a_pool_too_big_for_the_spread_keeps_its_baselines_and_leaves_the_spread_to_the_page(store, monkeypatch):
    """Ten coverage passes over a big pool would cost minutes: above SPREAD_WORK (pool x budget) the
    baselines are measured, the spread is not stored, and the Map page offers to measure it."""
    map_id = make_mapped_store(store)
    monkeypatch.setattr(sel, "SPREAD_WORK", 20 * 50)
    r = sel.select(store, name="big-pool", budget=20, map_id=map_id)
    assert r.n_candidates * 20 > sel.SPREAD_WORK
    assert r.baselines and r.spread == {} and stored_selections.stored_spread(store, r.id) is None


def test_spread_measured_before_it_was_stored_moves_into_the_selection(tmp_path):
    """Migration 029: a spread the Map page kept in ui_state becomes the selection's stored spread."""
    import duckdb

    from core.store import MIGRATIONS, migrate, open_store
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    original = list(MIGRATIONS)
    try:
        MIGRATIONS[:] = [m for m in original if m[0] < "029"]
        migrate(con)
    finally:
        MIGRATIONS[:] = original
    old = {"draws": 5, "budget": 3, "candidates": 9, "selection": {"max": 1.0, "mean": 0.5}}
    con.execute("INSERT INTO selections(name, method, budget, n_items) VALUES ('measured', 'kcenter', 3, 3), "
                "('unmeasured', 'kcenter', 3, 3)")
    con.execute("INSERT INTO ui_state(key, value) VALUES ('map.coverage_spread.1', ?)", [json.dumps(old)])
    con.close()
    with open_store(tmp_path / "old.duckdb") as s:
        assert stored_selections.stored_spread(s, 1) == old
        assert stored_selections.stored_spread(s, 2) is None
        assert s.get_ui_state("map.coverage_spread.1") is None


def test_cli_select_shows_the_spread(tmp_path):
    from core.cli.main import app
    from core.store import open_store
    db = tmp_path / "cli.duckdb"
    with open_store(db) as s:
        make_mapped_store(s)
    runner = CliRunner()
    res = runner.invoke(app, ["--db", str(db), "select", "--budget", "15", "--name", "shown", "--clusters", "0,1"])
    assert res.exit_code == 0, res.output
    assert "random × 5 draws" in res.output and "stratified × 5 draws" in res.output   # a map: stratified too
    assert "this selection" in res.output
    res = runner.invoke(app, ["--db", str(db), "select", "--budget", "15", "--name", "as-json", "--json"])
    out = json.loads(res.stdout)
    assert "stratified" not in out["spread"]                                          # no map, no strata
    assert out["spread"]["draws"] == 5 and out["spread"]["random"]["max"]["min"] <= out["spread"]["random"]["max"]["max"]
    with open_store(db) as s:
        assert stored_selections.stored_spread(s, out["id"]) == out["spread"]
