"""Map runs: UMAP + clusters + c-TF-IDF labels, deterministic with a seed, stored as runs."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from core import maps
from core.embed import _store_vectors, snippet_text, text_hash
from core.errors import ShoalError

TOPICS = {
    "json": ("parse_json_token", "Decode a JSON token from the text.",
             "    tokens = scan_json(text)\n    return decode_token(tokens[{i}])\n"),
    "socket": ("open_socket_connection", "Connect a socket to the remote host.",
               "    sock = socket.create_connection((host, {i}))\n    sock.sendall(payload)\n    return sock\n"),
    "matrix": ("multiply_matrix_rows", "Multiply the rows of a matrix by a vector.",
               "    rows = [sum(a * b for a, b in zip(row, vector)) for row in matrix[{i}:]]\n    return rows\n"),
}


def planted_corpus(per_topic: int = 40, dim: int = 32, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Snippets in three planted topics and vectors drawn around one centre per topic."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(TOPICS), dim)) * 4
    spread = np.linspace(1.5, 0.05, dim)  # anisotropic like real embeddings: a few directions dominate
    rows, vecs = [], []
    for t, (topic, (name, doc, body)) in enumerate(TOPICS.items()):
        for i in range(per_topic):
            code = f"def {name}_{i}(text, host, payload, matrix, vector):\n    \"\"\"{doc}\"\"\"\n" + body.format(i=i)
            rows.append({"id": hashlib.sha256(code.encode()).hexdigest()[:32], "kind": "function",
                         "source": f"demo-{topic}", "source_kind": "dir", "language": "python" if i % 4 else "go",
                         "code": code, "n_chars": len(code), "func_name": f"{name}_{i}", "docstring": doc,
                         "path": f"{topic}.py"})
            vecs.append(centres[t] + rng.normal(size=dim) * spread)
    return pd.DataFrame(rows), np.asarray(vecs, dtype=np.float32)


def add_vectors(store, snips: pd.DataFrame, X: np.ndarray, key: str = "test-model") -> None:
    hashes = [text_hash(snippet_text(r.func_name, r.docstring, r.code)) for r in snips.itertuples()]
    _store_vectors(store, key, hashes, X)


def make_mapped_store(store, per_topic: int = 40, n_clusters: int | None = 3) -> int:
    """A store with planted snippets, their vectors (model 'test-model') and a map; returns the map id."""
    snips, X = planted_corpus(per_topic)
    store.insert_df("snippets", snips)
    add_vectors(store, snips, X)
    return maps.build_map(store, model="test-model", n_clusters=n_clusters, n_epochs=30, seed=7).map_id


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
    assert maps.auto_n_clusters(300) == 9 and maps.auto_n_clusters(1_000_000) == maps.MAX_AUTO_CLUSTERS
    assert maps.auto_n_clusters(5) == 2
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
    assert maps.label_words("parseHTTPHeader_v2") == "parse http header v "
    with pytest.raises(ShoalError, match="Nothing is embedded"):
        maps.build_map(store)
    with pytest.raises(ShoalError, match="No map yet"):
        maps.get_map(store)


def test_cli_map_json(tmp_path):
    import json

    from typer.testing import CliRunner

    from core.cli import app
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
