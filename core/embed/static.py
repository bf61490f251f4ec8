"""The static embedding backend: a per-token table distilled from the shipped sentence-transformer.

model2vec's recipe (its ``distill_from_model`` with the model's own vocabulary), run here with
the model Shoal already has on disk, so nothing is downloaded:

1. every word piece of the model's vocabulary (less BERT's ``[unused…]`` slots, which no text
   produces) is passed through the transformer alone, as ``[CLS] piece [SEP]``, and its output
   is mean-pooled over the three positions;
2. the table is PCA-reduced to ``PCA_DIMS`` dimensions (model2vec 0.10's eigen-decomposition
   PCA, signs fixed by the largest score);
3. each row is scaled by its Zipf / SIF weight ``a / (a + p(rank))``, ``a = 1e-4``, the rank
   being the piece's place in the vocabulary (WordPiece vocabularies are roughly by frequency).

Why not ``model2vec.distill`` itself: its ``distill`` extra pins ``transformers<5.4`` (Shoal's
sentence-transformers runs on a newer one) and adds skeletoken; the three steps above are the
part of it Shoal needs. model2vec's ``StaticModel`` (no extra) holds, saves and loads the table
and encodes: the model's tokenizer (no special tokens, at most ``MAX_TEXT_TOKENS`` pieces), the mean
of the rows, L2-normalised.

The table is made once per machine and model, under ``cache_dir()/static/<stamp>`` (the stamp
hashes the model's folder, the recipe and its version), written to a temporary folder and
renamed into place, so a half-made table is never loaded. Distilling all-MiniLM-L6-v2 costs about
40 CPU-seconds (one thread: 3-token sequences gain nothing from a second one); `shoal warmup` does it
at set-up. Encoding is a tokenizer pass and a mean.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from core.errors import MissingDependency, ShoalError
from core.paths import cache_dir

if TYPE_CHECKING:
    from tokenizers import Tokenizer

RECIPE_VERSION = 1        # bump when the recipe changes: a new stamp, a new table
PCA_DIMS = 256
SIF_COEFFICIENT = 1e-4
MAX_TEXT_TOKENS = 512          # word pieces per text (MiniLM reads 256; a static mean can afford more)
UNUSED = re.compile(r"\[unused\d+\]")
DISTIL_BATCH = 1024
DONE_FILE = "shoal-static.json"

_LOCK = threading.Lock()


def stamp(source: str, vocab_limit: int | None = None) -> str:
    """Which table: the model's folder (or name), the recipe and, for tests, a vocabulary limit."""
    where = str(Path(source).resolve()) if Path(source).exists() else source
    text = f"{where}|v{RECIPE_VERSION}|pca{PCA_DIMS}|sif{SIF_COEFFICIENT}|tok{MAX_TEXT_TOKENS}|lim{vocab_limit}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def table_dir(source: str, vocab_limit: int | None = None) -> Path:
    return cache_dir() / "static" / stamp(source, vocab_limit)


def zipf_weights(n: int, sif: float = SIF_COEFFICIENT) -> np.ndarray:
    """model2vec's SIF weights from Zipf's law: rank r (0-based) has p ∝ 1 / (r + 2)."""
    inv_rank = 1.0 / np.arange(2, n + 2)
    proba = inv_rank / inv_rank.sum()
    return sif / (sif + proba)


def pca(X: np.ndarray, dims: int) -> np.ndarray:
    """model2vec 0.10's PCA: eigen-decomposition of the covariance, signs fixed by the largest score."""
    if dims >= min(X.shape):
        dims = min(X.shape)
    Xc = X - X.mean(axis=0)
    cov = (Xc.T @ Xc) / max(len(X) - 1, 1)
    _, vecs = np.linalg.eigh(cov)
    components = vecs[:, ::-1][:, :dims]
    scores = Xc @ components
    signs = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    return scores * np.where(signs == 0, 1.0, signs)


def kept_token_ids(vocab: dict[str, int], special_ids: set[int], limit: int | None = None) -> np.ndarray:
    """Vocabulary ids that get a row: not an ``[unused…]`` slot nor a special token, in id order."""
    ids = sorted(i for t, i in vocab.items() if not UNUSED.fullmatch(t) and i not in special_ids)
    return np.asarray(ids[:limit] if limit else ids, dtype=np.int64)


def token_outputs(st_model, ids: np.ndarray, batch: int = DISTIL_BATCH) -> np.ndarray:
    """The transformer's output for each piece alone (``[CLS] piece [SEP]``), mean over the 3 positions."""
    import torch

    tok = st_model.tokenizer
    bos = [tok.cls_token_id] if tok.cls_token_id is not None else []
    eos = [tok.sep_token_id] if tok.sep_token_id is not None else []
    bert = st_model[0].auto_model.eval()
    out = np.zeros((len(ids), bert.config.hidden_size), dtype=np.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # 3-token sequences: a second thread mostly spins (3x the CPU time on a busy machine)
    try:
        _forward_pieces(bert, ids, bos, eos, batch, out)
    finally:
        torch.set_num_threads(threads)
    return np.nan_to_num(out)


def _forward_pieces(bert, ids: np.ndarray, bos: list[int], eos: list[int], batch: int, out: np.ndarray) -> None:
    import torch

    with torch.inference_mode():
        for s in range(0, len(ids), batch):
            part = ids[s:s + batch]
            input_ids = torch.tensor([bos + [int(i)] + eos for i in part], dtype=torch.long)
            mask = torch.ones_like(input_ids)
            kwargs = {"input_ids": input_ids, "attention_mask": mask}
            if "token_type_ids" in bert.forward.__code__.co_varnames:
                kwargs["token_type_ids"] = torch.zeros_like(input_ids)
            hidden = bert(**kwargs).last_hidden_state
            out[s:s + len(part)] = hidden.float().mean(dim=1).numpy()


def distil(st_model, limit: int | None = None) -> tuple[np.ndarray, Tokenizer]:
    """(table (vocab size, PCA_DIMS) float32, tokenizer) of a loaded SentenceTransformer."""
    tok = st_model.tokenizer
    if not getattr(tok, "is_fast", False):
        raise ShoalError("The static backend needs a model with a fast (Rust) tokenizer.")
    vocab = tok.get_vocab()
    ids = kept_token_ids(vocab, set(tok.all_special_ids), limit)
    rows = pca(token_outputs(st_model, ids), PCA_DIMS) * zipf_weights(len(ids))[:, None]
    table = np.zeros((len(vocab), rows.shape[1]), dtype=np.float32)
    table[ids] = rows      # pieces without a row (unused slots, special tokens) count as nothing
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tok.backend_tokenizer.to_str())  # a copy: the loaded model keeps [CLS]/[SEP]
    backend.post_processor = None
    backend.no_padding()
    return table, backend


class StaticEncoder:
    """A distilled static model (model2vec's StaticModel): encode = tokenizer pass + mean, unit vectors."""

    def __init__(self, source: str, load_st: Callable[[], object], vocab_limit: int | None = None):
        try:
            from model2vec import StaticModel
        except ImportError:
            raise MissingDependency("The static embedding backend", "model2vec") from None
        self.source, self.folder = source, table_dir(source, vocab_limit)
        self.distilled_now = False
        with _LOCK:
            if not (self.folder / DONE_FILE).exists():
                self._make(load_st, vocab_limit)
        self.model = StaticModel.from_pretrained(str(self.folder), normalize=True, max_length=MAX_TEXT_TOKENS)
        self.dim = int(self.model.dim)
        self.max_seq_length = MAX_TEXT_TOKENS
        self.info = json.loads((self.folder / DONE_FILE).read_text(encoding="utf-8"))

    def _make(self, load_st: Callable[[], object], limit: int | None) -> None:
        import time

        from model2vec import StaticModel

        t0 = time.perf_counter()
        table, tokenizer = distil(load_st(), limit)
        model = StaticModel(vectors=table, tokenizer=tokenizer, normalize=True, max_length=MAX_TEXT_TOKENS,
                            config={"apply_pca": PCA_DIMS, "sif_coefficient": SIF_COEFFICIENT,
                                    "pooling": "mean", "shoal_recipe": RECIPE_VERSION},
                            base_model_name=Path(self.source).name)
        tmp = self.folder.with_name(f"{self.folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        info = {"source": self.source, "recipe": RECIPE_VERSION, "pca_dims": PCA_DIMS, "sif": SIF_COEFFICIENT,
                "max_tokens": MAX_TEXT_TOKENS, "vocab": int(table.shape[0]), "rows": int(np.count_nonzero(
                    table.any(axis=1))), "seconds": round(time.perf_counter() - t0, 1)}
        (tmp / DONE_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        if self.folder.exists() and not (self.folder / DONE_FILE).exists():
            shutil.rmtree(self.folder, ignore_errors=True)   # left by a crash before the rename
        try:
            os.replace(tmp, self.folder)   # atomic: a half-written table is never picked up
        except OSError:                    # another process made it first
            shutil.rmtree(tmp, ignore_errors=True)
        self.distilled_now = True

    def encode(self, texts: Sequence[str], batch_size: int = 1024, **_ignored) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(texts, batch_size=max(batch_size, 1024), use_multiprocessing=False)
        return np.ascontiguousarray(out, dtype=np.float32)
