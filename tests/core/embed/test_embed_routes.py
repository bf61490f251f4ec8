"""Vectors from anywhere: a Parquet import and a local Ray instance give the in-process route's vectors.

Real all-MiniLM-L6-v2 on real stdlib functions; the "elsewhere" vectors come from calling
sentence-transformers directly, as another machine would.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.embed import run as embed
from core.embed.imported import import_vectors, write_vectors_parquet
from core.errors import ShoalError
from tests.support.snippets import stdlib_snippets

KEY = "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def model():
    return embed.load_model(None, "torch")


def _cosines(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return (A * B).sum(1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)


def _in_process(tmp_path, snips):
    """The reference: the same snippets embedded in-process (torch) in a store of their own."""
    from core.store import open_store
    with open_store(tmp_path / "reference.duckdb") as ref:
        ref.insert_df("snippets", snips)
        embed.embed_corpus(ref, backend="torch", batch_size=16)
        ids, X, _ = embed.load_embeddings(ref, KEY)
    return dict(zip(ids, X))


def test_import_matches_in_process_and_counts_unknown_and_bad_rows(store, model, tmp_path):
    snips = stdlib_snippets(40)
    store.insert_df("snippets", snips)
    frame = embed.snippet_frame(store)
    vectors = model.encode(frame["text"].tolist(), batch_size=16, convert_to_numpy=True)  # "elsewhere"
    good = write_vectors_parquet(tmp_path / "good.parquet", vectors[:30], KEY,
                                 snippet_ids=frame["snippet_id"][:30].tolist())
    r = import_vectors(store, good)
    assert (r.model_key, r.dim, r.n_rows, r.n_imported, r.n_unknown, r.n_bad) == (KEY, 384, 30, 30, 0, 0)
    ref = _in_process(tmp_path, snips)
    ids, X, key = embed.load_embeddings(store, KEY)
    assert key == KEY and len(ids) == 30
    cos = _cosines(X, np.stack([ref[i] for i in ids]))
    assert cos.min() >= 0.999, cos.min()

    # a messy file keyed by content hash: 10 new rows, unknown snippets, bad rows of every kind
    rest = frame.iloc[30:]
    rows = [{"content_hash": h, "vector": v.tolist()} for h, v in zip(rest["content_hash"], vectors[30:])]
    rows += [{"content_hash": "0" * 32, "vector": vectors[0].tolist()},          # not in this corpus
             {"content_hash": frame["content_hash"][0], "vector": vectors[0].tolist()},  # cached already
             {"content_hash": frame["content_hash"][1], "vector": vectors[1][:100].tolist()},
             {"content_hash": frame["content_hash"][2], "vector": [float("nan")] * 384},
             {"content_hash": frame["content_hash"][3], "vector": None},
             {"content_hash": None, "vector": vectors[4].tolist()}]
    table = pa.Table.from_pylist(rows).replace_schema_metadata({"model": "sentence-transformers/all-MiniLM-L6-v2"})
    pq.write_table(table, tmp_path / "messy.parquet")
    r = import_vectors(store, tmp_path / "messy.parquet")
    assert (r.n_rows, r.n_imported, r.n_already_cached, r.n_unknown, r.n_bad) == (16, 10, 1, 1, 4)
    assert r.bad_reasons == {"dimension is not 384": 1, "non-finite values": 1, "no vector": 1,
                             "no snippet id or content hash": 1}
    assert embed.embedding_status(store, KEY)["n_embedded"] == 40

    # a row whose snippet changed since the vector was made is bad (stale), not stored
    sid = frame["snippet_id"][5]
    stale = write_vectors_parquet(tmp_path / "stale.parquet", vectors[5:6], KEY, snippet_ids=[sid],
                                  content_hashes=["f" * 32])
    assert import_vectors(store, stale).bad_reasons == {"stale: the snippet's text changed since it was embedded": 1}


def test_import_checks_model_and_dimension(store, tmp_path):
    store.insert_df("snippets", stdlib_snippets(3))
    frame = embed.snippet_frame(store)
    v = np.random.default_rng(0).normal(size=(3, 384)).astype(np.float32)
    f = write_vectors_parquet(tmp_path / "a.parquet", v, KEY, snippet_ids=frame["snippet_id"].tolist())
    with pytest.raises(ShoalError, match="not 'other-model'"):
        import_vectors(store, f, model="other-model")
    small = write_vectors_parquet(tmp_path / "b.parquet", v[:, :128], KEY, snippet_ids=frame["snippet_id"].tolist())
    with pytest.raises(ShoalError, match="128-d vectors, but 'all-MiniLM-L6-v2' vectors are 384-d"):
        import_vectors(store, small)
    pq.write_table(pa.table({"snippet_id": frame["snippet_id"], "vector": [list(x) for x in v]}), tmp_path / "c.parquet")
    with pytest.raises(ShoalError, match="name it with --model"):
        import_vectors(store, tmp_path / "c.parquet")
    r = import_vectors(store, tmp_path / "c.parquet", model="my-remote-model")  # named by --model
    assert (r.model_key, r.n_imported, r.dim) == ("my-remote-model", 3, 384)
    pq.write_table(pa.table({"id": ["x"], "emb": [[1.0]]}), tmp_path / "d.parquet")
    with pytest.raises(ShoalError, match="needs a `vector` column"):
        import_vectors(store, tmp_path / "d.parquet", model=KEY)
    (tmp_path / "e.parquet").write_text("not parquet")
    with pytest.raises(ShoalError, match="Cannot read"):
        import_vectors(store, tmp_path / "e.parquet", model=KEY)


def test_imported_vectors_feed_maps_and_selections(store, model, tmp_path):
    from typer.testing import CliRunner

    from core.cli.main import app
    from core.maps.build import build_map
    from core.select.run import select
    store.insert_df("snippets", stdlib_snippets(60))
    frame = embed.snippet_frame(store)
    vectors = model.encode(frame["text"].tolist(), batch_size=16, convert_to_numpy=True)
    pq.write_table(pa.table({"snippet_id": frame["snippet_id"], "vector": [list(map(float, x)) for x in vectors]}),
                   tmp_path / "remote.parquet")
    out = CliRunner().invoke(app, ["--db", str(store.path), "embed", "--import", str(tmp_path / "remote.parquet"),
                                   "--model", "remote-minilm"])
    assert out.exit_code == 0, out.output
    assert "60 vectors imported" in out.output and "0 bad rows" in out.output
    m = build_map(store, model="remote-minilm", n_clusters=3)
    assert m.n_points == 60 and m.model == "remote-minilm"
    sel = select(store, name="from remote", budget=10, method="kcenter", model="remote-minilm")
    assert sel.n_items == 10


@pytest.mark.slow
def test_ray_route_matches_in_process(store, tmp_path):
    pytest.importorskip("ray")
    from core.embed.ray_route import embed_with_ray
    snips = stdlib_snippets(120)
    store.insert_df("snippets", snips)
    progress = []
    r = embed_with_ray(store, backend="torch", shard_size=30, num_cpus=2, shard_dir=tmp_path / "shards",
                       progress=lambda d, t, n: progress.append(d))
    n = len(snips)
    assert (r.n_embedded, r.n_cached, r.shards_written, r.n_actors, r.engine) == (n, 0, 4, 2, "ray")
    assert progress[-1] == n
    files = sorted(p.name for p in (tmp_path / "shards" / KEY).iterdir())
    assert files == [f"shard-{i:06d}.parquet" for i in range(4)]
    assert store.scalar("SELECT sum(n_imported) FROM embedding_shards") == n
    ref = _in_process(tmp_path, snips)
    ids, X, _ = embed.load_embeddings(store, KEY)
    cos = _cosines(X, np.stack([ref[i] for i in ids]))
    assert len(ids) == n and cos.min() >= 0.999, cos.min()


@pytest.mark.slow
def test_warmup_prepares_the_backend_choice_and_umap_kernels_once(tmp_path, monkeypatch):
    """`shoal warmup` (run by make's set-up) exports the fast model and remembers the choice, so the
    first "Embed and build map" decides at once; a second warm-up measures nothing again."""
    from typer.testing import CliRunner

    import core.embed.model as embed_model
    from core.cli.main import app
    from core.embed.choice import remembered_agreement

    monkeypatch.setenv("SHOAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(embed_model, "_MODELS", {})      # as in a new process: nothing loaded yet
    assert remembered_agreement() is None
    out = CliRunner().invoke(app, ["--db", str(tmp_path / "w.duckdb"), "warmup"])
    assert out.exit_code == 0, out.output
    assert "Backend auto:" in out.output and "UMAP kernels compiled" in out.output
    measured = remembered_agreement()
    assert measured is not None and measured["cosine_mean"] >= 0.99
    assert list((tmp_path / "cache" / "onnx").glob("*/model-int8.onnx"))
    again = CliRunner().invoke(app, ["--db", str(tmp_path / "w.duckdb"), "warmup"])
    assert again.exit_code == 0 and remembered_agreement()["measured_at"] == measured["measured_at"]
