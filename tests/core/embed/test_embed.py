"""Embedding cache: real all-MiniLM-L6-v2 on a few real stdlib functions."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from core.embed import run as embed
from core.errors import ShoalError
from core.progress import Cancelled
from tests.support.snippets import stdlib_snippets


@pytest.fixture(scope="module")
def model():
    return embed.load_model(None, "torch")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """One fresh cache folder for this module's fast-backend tests (the ONNX export is made once)."""
    return tmp_path_factory.mktemp("shoal-cache")


def test_snippet_text_policy():
    code = 'def parse(x):\n    """Parse a thing."""\n    return int(x)\n'
    assert embed.snippet_text("parse", "Parse a thing.", code) == code  # docstring already in the code
    t = embed.snippet_text("parse", "Parse a thing.\n\nLong details.", "def parse(x): return int(x)")
    assert t.startswith("Parse a thing.\n")
    assert "Long details" not in t
    assert len(embed.snippet_text(None, None, "x" * 10_000)) == embed.MAX_TEXT_CHARS
    assert embed.model_key(None) == "all-MiniLM-L6-v2"
    assert embed.model_key("sentence-transformers/all-MiniLM-L6-v2", "fast") == "all-MiniLM-L6-v2+onnx-int8"
    with pytest.raises(ShoalError):
        embed.model_key(None, "gpu")


def test_embed_cache_hit_and_partial_reembed(store, model):
    snips = stdlib_snippets(40)
    store.insert_df("snippets", snips)
    progress = []
    r1 = embed.embed_corpus(store, backend="torch", batch_size=8,
                            progress=lambda d, t, n: progress.append((d, t)))
    assert r1.n_embedded == len(snips) and r1.n_cached == 0 and r1.max_seq_length == 256
    assert progress[-1] == (len(snips), len(snips))
    ids, X, key = embed.load_embeddings(store)
    assert key == "all-MiniLM-L6-v2" and ids == sorted(snips["id"]) and X.shape == (len(snips), 384)
    assert X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-4)
    # same vectors as calling sentence-transformers directly on the same texts
    texts = [embed.snippet_text(r.func_name, r.docstring, r.code) for r in snips.set_index("id").loc[ids].itertuples()]
    direct = model.encode(texts[:5], batch_size=8)
    np.testing.assert_allclose(X[:5], direct, atol=2e-5)

    # re-run: nothing new is embedded, and the model is not even needed
    n_before = store.scalar("SELECT count(*) FROM embeddings")
    r2 = embed.embed_corpus(store, backend="torch", batch_size=8)
    assert (r2.n_embedded, r2.n_cached) == (0, len(snips))
    assert store.scalar("SELECT count(*) FROM embeddings") == n_before

    # change one snippet's code: exactly one new vector
    sid = ids[3]
    store.execute("UPDATE snippets SET code = code || '\n# changed' WHERE id = ?", [sid])
    r3 = embed.embed_corpus(store, backend="torch", batch_size=8)
    assert r3.n_embedded == 1
    status = embed.embedding_status(store)
    assert status == {"model_key": "all-MiniLM-L6-v2", "n_snippets": len(snips), "n_embedded": len(snips)}


def test_cancel_keeps_finished_chunks(store, model):
    snips = stdlib_snippets(40)
    store.insert_df("snippets", snips)
    cancel = threading.Event()

    def progress(done, total, note):
        if done >= 16:  # after the first chunk (batch 2 x 8 batches)
            cancel.set()

    with pytest.raises(Cancelled):
        embed.embed_corpus(store, backend="torch", batch_size=2, progress=progress, cancel=cancel)
    kept = store.scalar("SELECT count(*) FROM embeddings")
    assert kept == 16
    r = embed.embed_corpus(store, backend="torch", batch_size=8)
    assert r.n_cached == 16 and r.n_embedded == len(snips) - 16


def test_unknown_model_is_a_clear_error(store):
    store.insert_df("snippets", stdlib_snippets(3))
    with pytest.raises(ShoalError, match="Cannot load the embedding model"):
        embed.embed_corpus(store, model="/nonexistent/model-folder", backend="torch")
    with pytest.raises(ShoalError, match="Nothing is embedded yet"):
        embed.load_embeddings(store)


def test_fast_backend_matches_torch(store, model, onnx_cache, monkeypatch):
    monkeypatch.setenv("SHOAL_CACHE_DIR", str(onnx_cache))
    from core.embed import model as embed_model
    monkeypatch.setattr(embed_model, "_MODELS", {})   # an earlier test's fast model must not stand in for the export
    snips = stdlib_snippets(24)
    store.insert_df("snippets", snips)
    embed.embed_corpus(store, backend="torch", batch_size=8)
    r = embed.embed_corpus(store, batch_size=8, backend="fast")
    assert r.model_key == "all-MiniLM-L6-v2+onnx-int8" and r.n_embedded == len(snips)
    _, A, _ = embed.load_embeddings(store, "all-MiniLM-L6-v2")
    _, B, _ = embed.load_embeddings(store, "all-MiniLM-L6-v2+onnx-int8")
    cos = (A * B).sum(1) / np.linalg.norm(A, axis=1) / np.linalg.norm(B, axis=1)
    assert cos.mean() >= 0.99, cos
    assert (onnx_cache / "onnx").exists()


def test_device_auto_is_cpu_here_and_cuda_is_a_clear_error(store):
    from typer.testing import CliRunner

    from core.cli.main import app
    from core.embed.device import cuda_available, resolve_device
    if cuda_available():
        pytest.skip("this machine has a GPU")
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ShoalError, match="PyTorch sees no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ShoalError, match="Unknown device"):
        resolve_device("tpu")
    store.insert_df("snippets", stdlib_snippets(4))
    with pytest.raises(ShoalError, match="no CUDA GPU"):
        embed.embed_corpus(store, device="cuda")
    assert store.scalar("SELECT count(*) FROM embeddings") == 0
    r = embed.embed_corpus(store, backend="torch", device="auto")
    assert r.device == "cpu" and r.n_embedded == 4
    out = CliRunner().invoke(app, ["--db", str(store.path), "embed", "--device", "cuda"])
    assert out.exit_code != 0 and "no CUDA GPU" in out.output and "Traceback" not in out.output


def test_auto_backend_is_measured_once_and_remembered(store, onnx_cache, monkeypatch):
    from core.embed import choice as embed_choice
    monkeypatch.setenv("SHOAL_CACHE_DIR", str(onnx_cache))
    memory = onnx_cache / "backend-choice.json"
    memory.unlink(missing_ok=True)
    assert "measures once" in embed_choice.default_backend_note()
    first = embed_choice.choose_backend(None, "auto", "cpu")
    m = first.measurement
    assert memory.exists() and m["n_texts"] == embed_choice.PROBE_TEXTS
    assert m["cosine_mean"] >= embed_choice.AGREEMENT_MIN  # all-MiniLM-L6-v2 int8 agrees (about 0.993)
    expected = "fast" if m["speed_ratio"] >= 1 - embed_choice.SPEED_MARGIN else "torch"
    assert first.backend == expected and first.reason.startswith(expected)

    def no_second_measurement(model):
        raise AssertionError("measured twice")
    monkeypatch.setattr(embed_choice, "measure_agreement", no_second_measurement)
    again = embed_choice.choose_backend(None, "auto", "cpu")
    assert (again.backend, again.measurement) == (first.backend, m)
    assert embed_choice.default_backend_note().startswith("Backend auto uses " + first.reason + "; static")
    store.insert_df("snippets", stdlib_snippets(6))
    r = embed.embed_corpus(store, batch_size=8)  # the default is auto
    assert r.backend == first.backend and r.reason == first.reason
    assert r.model_key == embed.model_key(None, first.backend)
    # explicit backends are never measured, and a GPU-only combination is refused
    assert embed_choice.choose_backend(None, "torch", "cpu").reason == "torch: asked for"
    with pytest.raises(ShoalError, match="Unknown embedding backend"):
        embed_choice.choose_backend(None, "int4", "cpu")


def test_backend_verdict_needs_agreement_and_no_slowdown():
    from core.embed.choice import _verdict
    base = {"cosine_mean": 0.993, "torch_per_s": 100.0, "fast_per_s": 180.0, "speed_ratio": 1.8}
    assert _verdict(base)[0] == "fast"
    assert _verdict({**base, "cosine_mean": 0.97})[0] == "torch"
    assert "does not agree" in _verdict({**base, "cosine_mean": 0.97})[1]
    slow = {**base, "fast_per_s": 80.0, "speed_ratio": 0.8}
    assert _verdict(slow)[0] == "torch" and "PyTorch is faster" in _verdict(slow)[1]
    assert _verdict({**base, "fast_per_s": 97.0, "speed_ratio": 0.97})[0] == "fast"  # within noise: fast


def test_backend_measurement_of_an_older_method_is_made_again(tmp_path, monkeypatch):
    from core.embed import choice as embed_choice
    monkeypatch.setenv("SHOAL_CACHE_DIR", str(tmp_path))
    key = embed_choice._memory_key(None)
    old = {"cosine_mean": 0.992, "torch_per_s": 12.7, "fast_per_s": 12.0, "speed_ratio": 0.944}
    embed_choice._remember(key, old)  # a one-round wall-clock record from before: not trusted any more
    assert embed_choice.remembered_agreement() is None
    new = {**old, "fast_per_s": 20.0, "speed_ratio": 1.7, "wall_speed_ratio": 1.5, "cpu_speed_ratio": 1.7,
           "method": embed_choice.MEASURE_METHOD}
    calls = []
    monkeypatch.setattr(embed_choice, "measure_agreement", lambda model: calls.append(model) or new)
    assert embed_choice.backend_agreement(None) == new and calls == [None]
    assert embed_choice.backend_agreement(None) == new and calls == [None]  # remembered now
    assert embed_choice.choose_backend(None, "auto", "cpu").backend == "fast"
    assert embed_choice.remembered_agreement() == new
