"""Snippet embeddings with sentence-transformers, cached in DuckDB by (text hash, model).

What is embedded (one text per snippet, the same for every model):
    [first paragraph of the docstring, if the code does not already contain it]
    [function name, if the code does not contain it]
    code
cut at `MAX_TEXT_CHARS` characters. The model then keeps its first `max_seq_length` word
pieces (all-MiniLM-L6-v2: 256, about 700-900 characters of code), so the name and the
docstring summary, which come first, always count; the tail of a long function may not.

The cache key is (sha256 of that exact text, model key): an unchanged snippet is never
embedded twice, whatever its id or source; editing a snippet's code re-embeds only it.
The model key is the model name as given (the built-in default is ``all-MiniLM-L6-v2``),
plus ``+int8`` for the fast backend, whose vectors differ slightly from PyTorch's.

Backends: ``torch`` (sentence-transformers as is), ``fast`` (the same weights exported once to
ONNX and quantized to int8, run by ONNX Runtime: core.embed.onnx) and ``auto``, the default:
fast wherever it agrees with PyTorch (mean cosine >= 0.99) and is not slower, measured once per
model (core.embed.choice), and PyTorch float16 when a GPU is in use (``device``: core.embed.device).
PyTorch's own int8 dynamic quantization was tried and rejected: mean cosine 0.93-0.99.

Other routes to the same cache: core.embed.imported (vectors computed elsewhere, from Parquet) and
core.embed.ray_route (a Ray cluster); all of them write through core.embed.vectors.
"""
from __future__ import annotations

import threading
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from core.embed.model import (  # noqa: F401  (the model layer, re-exported for callers of core.embed.run)
    _DEFAULT_ALIASES,
    _MODELS_LOCK,
    BACKENDS,
    CHUNK_BATCHES,
    DEFAULT_MODEL,
    DOC_SUMMARY_CHARS,
    FAST_SUFFIX,
    KEY_BACKENDS,
    MAX_TEXT_CHARS,
    STATIC_SUFFIX,
    _doc_summary,
    _load_sentence_transformer,
    _model_source,
    encode,
    is_default_model,
    load_model,
    model_key,
    snippet_text,
    split_key,
    text_hash,
)
from core.embed.vectors import insert_vectors, missing_hashes, store_vectors
from core.errors import ShoalError
from core.progress import ProgressFn, check_cancel, report
from core.store import Store, register

STATIC_CHUNK = 20_000   # texts per cache write with the static backend (thousands per second)

# --------------------------------------------------------------------------- cache

def _store_vectors(store: Store, key: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
    """Insert on the store's cursor, in whatever transaction the caller holds (see core.embed.vectors)."""
    insert_vectors(store.cursor(), key, hashes, vectors)


def snippet_frame(store: Store, snippet_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Snippet ids with the text to embed and its hash, ordered by id."""
    cur = store.cursor()
    if snippet_ids is None:
        rows = cur.execute("SELECT id, func_name, docstring, code FROM snippets ORDER BY id").fetchall()
    else:
        register(cur, "_emb_ids", pd.DataFrame({"id": sorted(set(snippet_ids))}))
        try:
            rows = cur.execute("SELECT s.id, s.func_name, s.docstring, s.code FROM snippets s "
                               "JOIN _emb_ids w ON w.id = s.id ORDER BY s.id").fetchall()
        finally:
            cur.unregister("_emb_ids")
    texts = [snippet_text(f, d, c) for _, f, d, c in rows]
    return pd.DataFrame({"snippet_id": [r[0] for r in rows], "text": texts,
                         "content_hash": [text_hash(t) for t in texts]})


@dataclass
class EmbedResult:
    model_key: str
    backend: str
    n_snippets: int
    n_unique_texts: int
    n_cached: int
    n_embedded: int
    seconds: float
    max_seq_length: int | None
    device: str = "cpu"
    reason: str = ""       # why this backend (core.embed.choice), for the CLI and the Map page
    engine: str = "local"

    def summary(self) -> dict:
        return asdict(self)


@dataclass
class Pending:
    """What an embedding run has to do: every snippet, its unique texts, and those not cached yet."""
    n_snippets: int
    n_unique: int
    todo: pd.DataFrame  # content_hash, text: longest first (less padding per batch)


def pending_texts(store: Store, key: str, snippet_ids: Iterable[str] | None = None) -> Pending:
    return _pending(store, key, snippet_frame(store, snippet_ids))


def _pending(store: Store, key: str, frame: pd.DataFrame) -> Pending:
    uniq = frame.drop_duplicates("content_hash")
    missing = missing_hashes(store, key, uniq["content_hash"].tolist()) if len(uniq) else set()
    todo = uniq[uniq["content_hash"].isin(missing)]
    todo = todo.iloc[np.argsort(-todo["text"].str.len().to_numpy(), kind="stable")]
    return Pending(len(frame), len(uniq), todo[["content_hash", "text"]].reset_index(drop=True))


def corpus_choice(store: Store, model: str | None = None, backend: str = "auto", device: str = "auto",
                  snippet_ids: Iterable[str] | None = None):
    """(core.embed.choice's BackendChoice, the chosen key's Pending) for embedding these snippets.

    `auto` weighs what the model itself (torch or fast, whichever has more cached) would still
    have to embed, so a corpus embedded with MiniLM once stays on MiniLM when a few snippets are
    added; the snippet texts are read once."""
    from core.embed.choice import choose_backend
    frame = snippet_frame(store, snippet_ids)
    n_model = None
    if (backend or "auto").strip().lower() == "auto":
        n_model = min(len(_pending(store, model_key(model, b), frame).todo) for b in ("torch", "fast"))
    choice = choose_backend(model, backend, device, n_to_embed=n_model)
    return choice, _pending(store, model_key(model, choice.backend), frame)


def embed_corpus(store: Store, model: str | None = None, backend: str = "auto", batch_size: int = 32,
                 snippet_ids: Iterable[str] | None = None, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, device: str = "auto") -> EmbedResult:
    """Embed every snippet (or `snippet_ids`) whose text is not yet cached for this model.

    `backend` auto picks static, fast or torch (core.embed.choice, from how many texts the model
    would still have to embed; the result says which and why). Texts are encoded longest first in
    chunks of `CHUNK_BATCHES` batches; each chunk is written to the cache before the next starts,
    so a cancel or crash keeps the work done.
    """
    if batch_size < 1:
        raise ShoalError("The batch size must be at least 1.")
    t0 = time.perf_counter()
    choice, plan = corpus_choice(store, model, backend, device, snippet_ids)
    key = model_key(model, choice.backend)
    max_seq = None
    total = len(plan.todo)
    report(progress, 0, total, f"{plan.n_unique - total} cached, {total} to embed ({choice.backend})")
    if total:
        st_model = load_model(model, choice.backend, choice.device)
        max_seq = getattr(st_model, "max_seq_length", None)
        texts, hashes = plan.todo["text"].tolist(), plan.todo["content_hash"].tolist()
        chunk = STATIC_CHUNK if choice.backend == "static" else batch_size * CHUNK_BATCHES
        started = time.perf_counter()
        for s in range(0, total, chunk):
            check_cancel(cancel)
            vectors = encode(st_model, texts[s:s + chunk], batch_size)
            store_vectors(store, key, hashes[s:s + chunk], vectors)
            done = min(s + chunk, total)
            rate = done / max(time.perf_counter() - started, 1e-9)
            report(progress, done, total, f"{rate:.0f} snippets/s")
        store.checkpoint()
    return EmbedResult(key, choice.backend, plan.n_snippets, plan.n_unique, plan.n_unique - total, total,
                       time.perf_counter() - t0, max_seq, choice.device, choice.reason)


def default_model_key(store: Store) -> str | None:
    """The model key used most recently (newest cached vector), or None if nothing is embedded."""
    return store.scalar("SELECT model FROM embeddings ORDER BY created_at DESC, model LIMIT 1")


def resolve_key(store: Store, model: str | None) -> str:
    """A model key for reading vectors: as given (name or key), else the most recent one."""
    if model is None or not model.strip():
        key = default_model_key(store)
        if key is None:
            raise ShoalError("Nothing is embedded yet: run `shoal embed` (or Embed on the Map page) first.")
        return key
    return key_of(model)


def key_of(name: str) -> str:
    """The model key a name or key means: ``X+onnx-int8`` is X on the fast backend, ``X+static`` its
    static table, anything else torch."""
    base, backend = split_key(name)
    return model_key(base, backend)


def load_embeddings(store: Store, model: str | None = None,
                    snippet_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray, str]:
    """(snippet ids, float32 matrix (n, dim), model key) of every snippet with a cached vector.

    Snippets not embedded yet under this model are left out (see `embedding_status`).
    """
    key = resolve_key(store, model)
    frame = snippet_frame(store, snippet_ids)
    frame["ord"] = np.arange(len(frame), dtype=np.int64)
    cur = store.cursor()
    register(cur, "_emb_want", frame[["snippet_id", "content_hash", "ord"]])
    try:
        with warnings.catch_warnings():  # "Arrow output on a DB-API result makes an extra copy"
            warnings.simplefilter("ignore")
            table = cur.execute("SELECT w.snippet_id, e.vector FROM _emb_want w JOIN embeddings e "
                                "ON e.content_hash = w.content_hash AND e.model = ? ORDER BY w.ord",
                                [key]).to_arrow_table()
    finally:
        cur.unregister("_emb_want")
    if table is None:   # DuckDB gives None only for a statement without a result set
        raise LookupError("the embeddings query gave no result set")
    ids = table.column("snippet_id").to_pylist()
    if not ids:
        return [], np.zeros((0, 0), dtype=np.float32), key
    vec = table.column("vector").combine_chunks()
    flat = vec.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    dim = len(flat) // len(ids)
    if dim * len(ids) != len(flat):
        raise ShoalError(f"Embeddings of model {key!r} have mixed dimensions; re-embed with another model name.")
    return ids, flat.reshape(len(ids), dim), key


def embedding_status(store: Store, model: str | None = None) -> dict:
    """How many snippets there are and how many have a vector under the model key."""
    n = int(store.scalar("SELECT count(*) FROM snippets") or 0)
    try:
        key = resolve_key(store, model)
    except ShoalError:
        return {"model_key": None, "n_snippets": n, "n_embedded": 0}
    frame = snippet_frame(store)
    missing = missing_hashes(store, key, frame["content_hash"].drop_duplicates().tolist()) if n else set()
    n_missing = int(frame["content_hash"].isin(missing).sum())
    return {"model_key": key, "n_snippets": n, "n_embedded": n - n_missing}


def cached_models(store: Store) -> pd.DataFrame:
    return store.df("SELECT model, count(*) AS vectors, any_value(dim) AS dim, max(created_at) AS last "
                    "FROM embeddings GROUP BY model ORDER BY last DESC")
