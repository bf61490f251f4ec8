"""The static backend: a model2vec table distilled from the shipped all-MiniLM-L6-v2, offline, once per machine.

The table is distilled once for this module into a fresh cache folder, with every socket connection
refused, so "offline" is checked, not assumed. Tests distil only the first TEST_VOCAB word pieces (the
single characters and the commonest words): the full vocabulary is 29,523 forward passes, about 140
CPU-seconds on 2 cores (done once per machine by `shoal warmup`), too slow for a unit test; the recipe
is the same, and a piece without a row counts as nothing.
"""
from __future__ import annotations

import json
import socket

import numpy as np
import pytest

from core.embed import choice as embed_choice
from core.embed import model as embed_model
from core.embed import run as embed
from core.embed.static import DONE_FILE, PCA_DIMS, StaticEncoder, table_dir, zipf_weights
from tests.support.snippets import stdlib_snippets

TEST_VOCAB = 3_000


@pytest.fixture(scope="module")
def static_cache(tmp_path_factory):
    """(cache folder, the encoder distilled into it with the network cut off)."""
    mp = pytest.MonkeyPatch()
    folder = tmp_path_factory.mktemp("shoal-static-cache")
    mp.setenv("SHOAL_CACHE_DIR", str(folder))
    mp.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*_a, **_k):
        raise OSError("network access during distillation")
    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    source = embed_model._model_source(None)
    try:
        encoder = StaticEncoder(source, lambda: embed_model.load_model(None, "torch", "cpu"), vocab_limit=TEST_VOCAB)
    finally:
        mp.undo()
    yield folder, encoder


@pytest.fixture
def in_cache(static_cache, monkeypatch):
    monkeypatch.setenv("SHOAL_CACHE_DIR", str(static_cache[0]))
    monkeypatch.setitem(embed_model._MODELS, (embed.model_key(None, "static"), "cpu"), static_cache[1])
    return static_cache[1]


def test_distilled_once_offline_into_the_cache(static_cache, monkeypatch):
    folder, encoder = static_cache
    assert encoder.distilled_now and encoder.folder.parent == folder / "static"
    assert (encoder.folder / DONE_FILE).exists() and not list(encoder.folder.parent.glob("*.tmp-*"))
    assert encoder.info["rows"] == TEST_VOCAB and encoder.info["vocab"] == 30_522
    print(f"\ndistillation: {encoder.info['seconds']} s for {encoder.info['rows']} word pieces")
    monkeypatch.setenv("SHOAL_CACHE_DIR", str(folder))

    def no_model():
        raise AssertionError("the table was distilled again")
    again = StaticEncoder(encoder.source, no_model, vocab_limit=TEST_VOCAB)   # as another process would
    assert not again.distilled_now and again.folder == encoder.folder
    texts = ["def add(a, b):\n    return a + b", "class Stack:\n    def push(self, x): ..."]
    assert np.allclose(again.encode(texts), encoder.encode(texts))
    # another recipe or model folder is another table
    assert table_dir(encoder.source, TEST_VOCAB) == encoder.folder != table_dir(encoder.source)
    assert table_dir("/elsewhere/model") != encoder.folder


def test_distilling_leaves_the_loaded_model_as_it_was(static_cache):
    """The table's tokenizer drops [CLS]/[SEP]; the model it was distilled from (cached for the process,
    the one MiniLM embeddings come from) must keep them, or its vectors drift to cosine ~0.9."""
    cached = embed_model.load_model(None, "torch", "cpu")
    ids = cached.tokenizer("def add(a, b): return a + b")["input_ids"]
    assert ids[0] == cached.tokenizer.cls_token_id and ids[-1] == cached.tokenizer.sep_token_id
    fresh = embed_model._load_sentence_transformer(embed_model._model_source(None), "cpu")
    texts = ["def add(a, b):\n    return a + b", "class Stack:\n    def push(self, x): ...", "SELECT 1;"]
    a, b = embed.encode(cached, texts), embed.encode(fresh, texts)
    assert (a * b).sum(1).min() / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)).max() > 0.999


def test_encode_shape_and_unit_vectors(in_cache):
    texts = [embed.snippet_text(r.func_name, r.docstring, r.code) for r in stdlib_snippets(40).itertuples()]
    X = embed_model.encode(embed_model.load_model(None, "static"), texts)
    assert X.shape == (40, PCA_DIMS) and X.dtype == np.float32
    assert np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5)
    assert embed_model.encode(in_cache, []).shape == (0, PCA_DIMS)
    # meaning survives: a renamed copy is nearer its original than the other functions are
    a, b = texts[0], texts[0].replace("(", " ( ").replace("self", "this")
    va, vb = in_cache.encode([a, b])
    assert float(va @ vb) > max(float(va @ x) for x in X[1:])


def test_zipf_weights_rise_with_rank():
    w = zipf_weights(30_000)
    assert w[0] < 0.01 and w[-1] > 0.95 and np.all(np.diff(w) > 0)


def test_static_vectors_have_their_own_cache_key(store, in_cache):
    keys = {b: embed.model_key(None, b) for b in ("torch", "fast", "static")}
    assert keys["static"] == "all-MiniLM-L6-v2+static" and len(set(keys.values())) == 3
    assert embed.split_key(keys["static"]) == ("all-MiniLM-L6-v2", "static")
    assert embed.key_of("all-MiniLM-L6-v2+static") == keys["static"] and embed.key_of("x+static") == "x+static"
    assert embed.model_key("my/model", "static") == "my/model+static"
    store.insert_df("snippets", stdlib_snippets(12))
    r = embed.embed_corpus(store, backend="static")
    assert (r.backend, r.model_key, r.n_embedded, r.reason) == ("static", keys["static"], 12, r.reason)
    assert "asked for" in r.reason
    assert embed.embedding_status(store, keys["torch"])["n_embedded"] == 0      # nothing under MiniLM's key
    ids, X, key = embed.load_embeddings(store, "all-MiniLM-L6-v2+static")
    assert key == keys["static"] and X.shape == (12, PCA_DIMS)
    assert embed.embed_corpus(store, backend="static").n_embedded == 0        # cached like any backend


MEASURED = {"cosine_mean": 0.993, "torch_per_s": 12.0, "fast_per_s": 30.0, "speed_ratio": 2.5,
            "method": embed_choice.MEASURE_METHOD}


def test_auto_goes_static_when_the_model_would_take_too_long(monkeypatch):
    monkeypatch.setattr(embed_choice, "backend_agreement", lambda model, refresh=False: MEASURED)
    big = embed_choice.choose_backend(None, "auto", "cpu", n_to_embed=200_000)
    assert (big.backend, big.device) == ("static", "cpu")
    assert "200,000 snippets would take about 1.9 h with the fast backend here (30 snippets/s" in big.reason
    assert "more than 60 min" in big.reason and "29% of MiniLM's 10 nearest" in big.reason
    assert "Choose fast or torch" in big.reason
    demo = embed_choice.choose_backend(None, "auto", "cpu", n_to_embed=12_625)   # 7 min: MiniLM
    assert demo.backend == "fast" and demo.reason.startswith("fast (ONNX int8)")
    assert embed_choice.choose_backend(None, "auto", "cpu").backend == "fast"   # size unknown: never static
    assert embed_choice.choose_backend(None, "auto", "cpu", n_to_embed=1_500).backend == "fast"
    slow = {**MEASURED, "fast_per_s": 0.5}   # a very slow machine: still not below STATIC_MIN_TEXTS
    monkeypatch.setattr(embed_choice, "backend_agreement", lambda model, refresh=False: slow)
    assert embed_choice.choose_backend(None, "auto", "cpu", n_to_embed=1_999).backend == "fast"
    assert "about 67 min" in embed_choice.choose_backend(None, "auto", "cpu", n_to_embed=2_000).reason
    asked = embed_choice.choose_backend(None, "static", "cpu")
    assert (asked.backend, asked.reason) == ("static", "static: asked for (a model2vec table on the CPU)")


def test_auto_weighs_what_the_model_still_has_to_embed(store, in_cache, monkeypatch):
    monkeypatch.setattr(embed_choice, "backend_agreement", lambda model, refresh=False: MEASURED)
    monkeypatch.setattr(embed_choice, "STATIC_MIN_TEXTS", 5)
    monkeypatch.setattr(embed_choice, "STATIC_AFTER_SECONDS", 0.2)   # 30/s: more than 6 texts go static
    store.insert_df("snippets", stdlib_snippets(10))
    choice, plan = embed.corpus_choice(store)
    assert choice.backend == "static" and len(plan.todo) == 10 and "10 snippets would take" in choice.reason
    r = embed.embed_corpus(store)
    assert r.backend == "static" and r.model_key.endswith("+static") and r.reason == choice.reason
    # with MiniLM's vectors cached (here PyTorch's), a few new snippets stay on MiniLM
    embed.embed_corpus(store, backend="torch", snippet_ids=embed.snippet_frame(store)["snippet_id"][:8])
    choice, _ = embed.corpus_choice(store)
    assert choice.backend == "fast" and "static" not in choice.reason
    assert embed.corpus_choice(store, backend="torch")[0].reason == "torch: asked for"


def test_default_backend_note_mentions_static(monkeypatch):
    monkeypatch.setattr(embed_choice, "remembered_agreement", lambda model=None: MEASURED)
    monkeypatch.setattr(embed_choice, "resolve_device", lambda device="auto": "cpu")
    note = embed_choice.default_backend_note()
    assert note.startswith("Backend auto uses fast (ONNX int8)")
    assert "static (a model2vec table distilled from the model) when that would take more than 60 min" in note
    assert "about 108,000 snippets here" in note


def test_leak_check_shortlists_with_static_and_confirms_with_minilm(store, in_cache, monkeypatch):
    from core.dataset.checks import semantic as S
    from core.dataset.checks.benchmarks import load_benchmarks, parse_spec
    from tests.support import semantic_planted as P
    from tests.support.seed_data import add_example, wave

    leak = P.humaneval_paraphrases(1, seed=0)[0]
    clean = P.stdlib_examples(2, seed=0)
    ids = [add_example(store, wave(e["instruction"], e["solution"])) for e in [leak, *clean]]
    texts = S._examples(store)["text"].tolist()
    problems = [p.text for p in S.benchmark_problems(load_benchmarks(parse_spec("humaneval")))]
    se, _ = S.text_vectors(store, texts, backend="static")
    sb, _ = S.text_vectors(store, problems, backend="static")
    best = S.nearest(se, sb, 1)[0][:, 0]
    monkeypatch.setattr(S, "LEAK_SHORTLIST", float(best.max()))      # exactly one example goes on to MiniLM
    r = S.run_semantic_decontamination(store, "humaneval", backend="torch", shortlist=True)
    assert r["shortlist"] == {"static_threshold": float(best.max()), "passed_on": 1, "of": 3}
    assert r["model_key"] == "all-MiniLM-L6-v2" and r["n_embedded"] == 1
    from core.dataset.checks.results import current_checks
    cur = current_checks(store, S.LEAK_KIND)
    near = {int(g): json.loads(d)["nearest"] for g, d in zip(cur["generation_id"], cur["detail"])}
    on = ids[int(best.argmax())]
    assert near[on] and all(not near[g] for g in ids if g != on)     # the others: no MiniLM neighbour
