"""Map runs: UMAP + clusters + c-TF-IDF labels, deterministic with a seed, stored as runs."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import ShoalError
from core.maps import build as maps
from core.maps import clusters
from tests.support.maps import add_vectors, crossings_reference, make_mapped_store, planted_corpus


def test_map_run_is_stored_labelled_and_deterministic(store):
    snips, X = planted_corpus()
    store.insert_df("snippets", snips)
    add_vectors(store, snips, X)
    progress = []
    r1 = maps.build_map(store, model="test-model", n_clusters=3, n_epochs=30, seed=7,
                        progress=lambda d, t, n: progress.append(n))
    r2 = maps.build_map(store, model="test-model", n_clusters=3, n_epochs=30, seed=7)
    assert r1.n_points == 120 and r1.n_clusters == 3 and r1.n_missing == 0
    assert any("UMAP" in p for p in progress)
    p1 = maps.map_points(store, r1.map_id)
    p2 = maps.map_points(store, r2.map_id)
    np.testing.assert_array_equal(p1[["x", "y"]].to_numpy(), p2[["x", "y"]].to_numpy())
    assert p1["cluster"].tolist() == p2["cluster"].tolist()
    assert "code" not in p1.columns
    c1, c2 = maps.map_clusters(store, r1.map_id), maps.map_clusters(store, r2.map_id)
    assert c1["label"].tolist() == c2["label"].tolist()
    # each planted topic is one cluster, named by its own words
    topic_of = dict(zip(snips["id"], snips["path"].str.removesuffix(".py")))
    for cl, grp in p1.groupby("cluster"):
        topics = {topic_of[s] for s in grp["snippet_id"]}
        assert len(topics) == 1
        label = c1.set_index("cluster").loc[cl, "label"]
        words = {"json": "json", "socket": "socket", "matrix": "matrix"}
        assert words[topics.pop()] in label, label
    assert sorted(c1["size"].tolist()) == [40, 40, 40]
    assert maps.get_map(store)["id"] == r2.map_id
    assert len(maps.list_maps(store)) == 2


def test_auto_clusters_and_hdbscan(store):
    assert clusters.auto_n_clusters(300) == 9 and clusters.auto_n_clusters(1_000_000) == clusters.MAX_AUTO_CLUSTERS
    assert clusters.auto_n_clusters(5) == 2
    snips, X = planted_corpus(30)
    store.insert_df("snippets", snips)
    add_vectors(store, snips, X)
    r = maps.build_map(store, model="test-model", method="hdbscan", n_clusters=10, n_epochs=30)
    assert 2 <= r.n_clusters <= 6
    with pytest.raises(ShoalError, match="at most"):
        maps.build_map(store, model="test-model", n_clusters=500, n_epochs=30)


def test_fit_on_sample_then_transform(store):
    snips, X = planted_corpus(40)
    store.insert_df("snippets", snips)
    add_vectors(store, snips, X)
    r = maps.build_map(store, model="test-model", n_clusters=3, sample=60, n_epochs=30)
    assert r.params["umap"]["fit_points"] == 60 and r.params["umap"]["transformed_points"] == 60
    pts = maps.map_points(store, r.map_id)
    assert np.isfinite(pts[["x", "y"]].to_numpy()).all() and len(pts) == 120


def test_label_words_and_errors(store):
    assert clusters.label_words("parseHTTPHeader_v2") == "parse http header v "
    with pytest.raises(ShoalError, match="Nothing is embedded"):
        maps.build_map(store)
    with pytest.raises(ShoalError, match="No map yet"):
        maps.get_map(store)


def test_cli_map_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from core.cli.main import app
    from core.store import open_store
    db = tmp_path / "cli.duckdb"
    with open_store(db) as s:
        snips, X = planted_corpus(20)
        s.insert_df("snippets", snips)
        add_vectors(s, snips, X)
    res = CliRunner().invoke(app, ["--db", str(db), "map", "--clusters", "3", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["n_points"] == 60 and out["model"] == "test-model" and len(out["clusters"]) == 3
    res = CliRunner().invoke(app, ["--db", str(db), "map", "--method", "spectral"])
    assert res.exit_code == 1 and "Unknown clustering method" in res.output


def test_neighbour_placement_keeps_fitted_points_and_lands_near_neighbours():
    snips, X = planted_corpus(60)
    coords, info = maps.project_2d(X, seed=3, sample=120, n_epochs=30, placement="neighbours")
    assert info["placement"] == "neighbours" and info["transformed_points"] == 60
    assert np.isfinite(coords).all()
    # a placed point sits with its own topic: its nearest fitted point (on the map) shares the topic
    fit_idx, rest_idx = maps._fit_split(len(X), 120, 3)
    topic = np.repeat(np.arange(3), 60)
    d = ((coords[rest_idx, None, :] - coords[None, fit_idx, :]) ** 2).sum(-1)
    assert (topic[fit_idx][d.argmin(axis=1)] == topic[rest_idx]).mean() >= 0.95
    with pytest.raises(ShoalError, match="Unknown placement"):
        maps.project_2d(X, placement="tsne")


def test_label_sample_keeps_every_cluster_and_is_seeded():
    labels = np.repeat(np.arange(4), [5000, 3000, 150, 10])
    rows = clusters.label_sample(labels, limit=1000, seed=1, per_cluster_floor=100)
    assert np.array_equal(rows, clusters.label_sample(labels, limit=1000, seed=1, per_cluster_floor=100))
    counts = np.bincount(labels[rows], minlength=4)
    assert counts.tolist()[2:] == [100, 10] and counts[0] > counts[1] > 100
    assert np.array_equal(clusters.label_sample(labels[:50], limit=1000), np.arange(50))


def test_review_status_and_preview(store):
    map_id = make_mapped_store(store)
    status = maps.map_review_status(store, map_id)
    assert len(status) == 120 and set(status["status"]) == {"no example"}
    sid = status["snippet_id"].iloc[0]
    prev = maps.snippet_preview(store, [sid, "missing-id"], lines=2, width=20)
    assert len(prev) == 2 and prev[1] == "" and prev[0].count("\n") == 1
    assert all(len(line) <= 20 for line in prev[0].splitlines())


def test_lasso_point_in_polygon_matches_reference_and_box():
    from core.maps.lasso import PointIndex
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=3000), rng.normal(size=3000)
    idx = PointIndex(x, y)
    for trial in range(5):   # random star-shaped and self-crossing polygons
        k = rng.integers(3, 40)
        ang = np.sort(rng.uniform(0, 2 * np.pi, k)) if trial % 2 else rng.uniform(0, 2 * np.pi, k)
        r = rng.uniform(0.3, 2.0, k)
        px, py = r * np.cos(ang), r * np.sin(ang)
        np.testing.assert_array_equal(idx.in_polygon(px, py), crossings_reference(x, y, px, py))
    box = idx.in_box([-0.5, 1.0], [0.2, -0.3])
    np.testing.assert_array_equal(box, np.flatnonzero((x >= -0.5) & (x <= 1) & (y >= -0.3) & (y <= 0.2)))
    assert len(idx.in_polygon([0, 1], [0, 1])) == 0


def test_umap_kernels_are_cached_on_disk():
    """UMAP's numba kernels keep their compiled code on disk (compiled once per machine, not per
    process): after `cache_umap_kernels`, kernels umap-learn left uncached have a real cache."""
    import warnings

    from numba.core.caching import NullCache
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap.layouts
        import umap.umap_
    maps.cache_umap_kernels()
    for kernel in (umap.umap_.smooth_knn_dist, umap.umap_.compute_membership_strengths,
                   umap.layouts._nb_optimize_layout_euclidean_single_epoch):
        assert not isinstance(kernel._cache, NullCache), kernel
    assert maps.cache_umap_kernels() == 0  # once per process


def test_a_long_umap_fit_says_how_long_it_has_run_and_about_how_long_it_takes(store):
    """UMAP's fit is one blocking call: its progress said "0 / n · UMAP: fitting" for minutes. It now
    ticks every second, with an estimate scaled from this database's last map."""
    import time as _time

    from core.maps.build import _FitTicker, fit_estimate
    assert fit_estimate(store, 1000) is None                          # no map yet: no estimate
    make_mapped_store(store)
    one = fit_estimate(store, 120)
    assert one is not None and one > 0 and fit_estimate(store, 1200) > 10 * one     # grows a bit faster than n
    notes: list[str] = []
    with _FitTicker(lambda done, total, note: notes.append(note), 5000, "UMAP: fitting 5,000 points", 150.0):
        _time.sleep(2.6)
    assert len(notes) >= 2 and all(n.startswith("UMAP: fitting 5,000 points · ") for n in notes)
    assert notes[-1].endswith("s of about 2.5 min"), notes
    seen: list[str] = []
    maps.project_2d(np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32), progress=lambda d, t, note:
               seen.append(note), expected_fit_s=42.0)
    assert seen[0] == "UMAP: fitting 60 points (about 42 s)"
