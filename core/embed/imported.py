"""Vectors computed elsewhere (`shoal embed --import FILE.parquet`), stored as one model's vectors.

The file has one row per snippet: ``vector`` (a list of floats) and ``snippet_id`` and/or
``content_hash`` (the hash of the text Shoal embeds for the snippet, core.embed.run.snippet_text).
The model is named by the file's Parquet metadata (``shoal.model``, or ``model``) or by
``--model``; when both are given they must agree. The dimension is checked against the
metadata (``shoal.dim`` / ``dim``), the vectors already cached for that model, and the
default model's own dimension. Rows for snippets the corpus does not have are counted, rows
that cannot be used are counted with their reason; neither stops the import.
Ray shards (core.embed.ray_route) are written in this format and imported by the same code.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from core.embed.vectors import cached_dim, store_vectors
from core.errors import ShoalError
from core.progress import ProgressFn, report
from core.store import Store

MODEL_META_KEYS = ("shoal.model", "model", "model_name")
DIM_META_KEYS = ("shoal.dim", "dim")
KNOWN_DIMS = {"all-MiniLM-L6-v2": 384}
BATCH_ROWS = 50_000


@dataclass
class ImportResult:
    model_key: str
    files: int = 0
    dim: int | None = None
    n_rows: int = 0
    n_imported: int = 0
    n_already_cached: int = 0
    n_unknown: int = 0          # rows for snippets (ids or hashes) this corpus does not have
    n_bad: int = 0
    bad_reasons: dict = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict:
        return asdict(self)

    def add(self, other: ImportResult) -> None:
        for name in ("files", "n_rows", "n_imported", "n_already_cached", "n_unknown", "n_bad"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.bad_reasons = dict(Counter(self.bad_reasons) + Counter(other.bad_reasons))
        self.dim = self.dim or other.dim


def write_vectors_parquet(path: Path, vectors: np.ndarray, model: str, *, content_hashes: Sequence[str] | None = None,
                          snippet_ids: Sequence[str] | None = None) -> Path:
    """A file `import_vectors` reads (atomically: written beside, then renamed)."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.embed.vectors import vectors_to_arrow
    cols = {}
    if snippet_ids is not None:
        cols["snippet_id"] = pa.array(list(snippet_ids), pa.string())
    if content_hashes is not None:
        cols["content_hash"] = pa.array(list(content_hashes), pa.string())
    cols["vector"] = vectors_to_arrow(vectors)
    table = pa.table(cols).replace_schema_metadata({"shoal.model": model, "shoal.dim": str(vectors.shape[1])})
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def _metadata(pf) -> dict[str, str]:
    raw = pf.schema_arrow.metadata or {}
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}


def _open(path: Path):
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(str(path))
    except FileNotFoundError:
        raise ShoalError(f"No such file: {path}") from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise ShoalError(f"Cannot read {path} as Parquet: {type(exc).__name__}: {str(exc)[:200]}") from None
    names = set(pf.schema_arrow.names)
    if "vector" not in names or not names & {"snippet_id", "content_hash"}:
        raise ShoalError(f"{path} needs a `vector` column and a `snippet_id` or `content_hash` column; "
                         f"it has {', '.join(sorted(names)) or 'none'}.")
    return pf


def file_model(path: Path, model: str | None) -> str:
    """The model key the vectors of `path` belong to: its metadata and/or `model`, which must agree."""
    from core.embed.run import key_of
    meta = _metadata(_open(Path(path)))
    named = next((meta[k] for k in MODEL_META_KEYS if meta.get(k)), None)
    if named and model and key_of(named) != key_of(model):
        raise ShoalError(f"{path} holds vectors of model {named!r}, not {model!r}: check --model.")
    chosen = model or named
    if not chosen:
        raise ShoalError(f"{path} does not say which model made its vectors (no `shoal.model` metadata): "
                         "name it with --model.")
    return key_of(chosen)


class Importer:
    """Imports vector files into one model key; the corpus' ids and hashes are read once."""

    def __init__(self, store: Store, key: str):
        from core.embed.run import snippet_frame, split_key
        self.store, self.key = store, key
        frame = snippet_frame(store)
        self.hash_of_id = dict(zip(frame["snippet_id"], frame["content_hash"]))
        self.hashes = set(frame["content_hash"])
        self.seen: set[str] = set()
        self.dim = cached_dim(store, key) or KNOWN_DIMS.get(split_key(key)[0])

    def _expected_dim(self, path: Path, meta: dict, lengths: np.ndarray) -> int:
        stated = next((meta[k] for k in DIM_META_KEYS if meta.get(k)), None)
        if stated is not None:
            try:
                stated = int(stated)
            except ValueError:
                raise ShoalError(f"{path}: its metadata dimension {stated!r} is not a number.") from None
            if self.dim is not None and stated != self.dim:
                raise ShoalError(f"{path} holds {stated}-d vectors, but {self.key!r} vectors are {self.dim}-d: "
                                 "it is another model's file, or --model is wrong.")
            return stated
        if self.dim is not None:
            return self.dim
        valid = lengths[lengths > 0]
        if not len(valid):
            raise ShoalError(f"{path}: no row has a vector, so the dimension cannot be told.")
        return int(np.bincount(valid).argmax())  # the common length; rows of other lengths are bad

    def import_file(self, path: Path, progress: ProgressFn | None = None) -> ImportResult:
        path = Path(path)
        t0 = time.perf_counter()
        pf = _open(path)
        meta = _metadata(pf)
        out = ImportResult(self.key, files=1)
        total = pf.metadata.num_rows
        for batch in pf.iter_batches(batch_size=BATCH_ROWS):
            self._import_batch(path, meta, batch, out)
            report(progress, out.n_rows, total, f"{out.n_imported} imported")
        out.seconds = time.perf_counter() - t0
        return out

    def _import_batch(self, path: Path, meta: dict, batch, out: ImportResult) -> None:
        import pyarrow.compute as pc
        bad: Counter[str] = Counter()
        n = batch.num_rows
        names = batch.schema.names
        vec = batch.column("vector")
        lengths = np.asarray(pc.fill_null(pc.list_value_length(vec), 0), dtype=np.int64)
        if self.dim is None or out.dim is None:
            self.dim = out.dim = self._expected_dim(path, meta, lengths)
        ids = batch.column("snippet_id").to_pylist() if "snippet_id" in names else [None] * n
        given = batch.column("content_hash").to_pylist() if "content_hash" in names else [None] * n
        ok_len = lengths == self.dim
        bad["no vector"] += int((lengths == 0).sum())
        bad[f"dimension is not {self.dim}"] += int(((lengths > 0) & ~ok_len).sum())
        rows = np.flatnonzero(ok_len)
        matrix = np.zeros((0, self.dim), np.float32)
        if len(rows):
            flat = pc.list_flatten(vec.take(rows)).to_numpy(zero_copy_only=False)
            matrix = np.asarray(flat, dtype=np.float32).reshape(len(rows), self.dim)
        finite = np.asarray(np.isfinite(matrix).all(axis=1))
        bad["non-finite values"] += int((~finite).sum())
        keep_rows: list[int] = []
        keep_hashes: list[str] = []
        for j, r in enumerate(rows):
            if not finite[j]:
                continue
            h, reason = self._resolve(ids[r], given[r])
            if reason == "unknown":
                out.n_unknown += 1
            elif reason == "same text":  # a second row for a text already taken (two snippets, one text)
                out.n_already_cached += 1
            elif reason:
                bad[reason] += 1
            elif h is not None:   # no reason: a usable row, which has its hash
                self.seen.add(h)
                keep_rows.append(j)
                keep_hashes.append(h)
        added = store_vectors(self.store, self.key, keep_hashes, matrix[keep_rows]) if keep_rows else 0
        out.n_rows += n
        out.n_imported += added
        out.n_already_cached += len(keep_rows) - added
        counted = {k: v for k, v in bad.items() if v}
        out.n_bad += sum(counted.values())
        out.bad_reasons = dict(Counter(out.bad_reasons) + Counter(counted))

    def _resolve(self, sid, given) -> tuple[str | None, str | None]:
        """(content hash, None) for a usable row, else (None, reason); "unknown" and "same text" are not bad rows."""
        if sid is None and given is None:
            return None, "no snippet id or content hash"
        if sid is not None:
            h = self.hash_of_id.get(sid)
            if h is None:
                return None, "unknown"
            if given is not None and given != h:
                return None, "stale: the snippet's text changed since it was embedded"
        else:
            h = given
            if h not in self.hashes:
                return None, "unknown"
        if h in self.seen:
            return None, "same text"
        return h, None


def import_vectors(store: Store, path: str | Path, model: str | None = None,
                   progress: ProgressFn | None = None) -> ImportResult:
    """Import one Parquet file of vectors (see the module docstring); never fails on a bad row."""
    path = Path(path)
    key = file_model(path, model)
    return Importer(store, key).import_file(path, progress)
