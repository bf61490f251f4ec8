"""The vector cache: the `embeddings` table, keyed by (content hash of the embedded text, model key).

Every route that produces vectors (in-process, a Ray cluster, a Parquet import) ends here, so
maps and selections read one table whatever computed the vectors.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from core.store import Store, insert_frame, register


def vectors_to_arrow(vectors: np.ndarray):
    """A float32 (n, dim) matrix as an Arrow ``list<float>`` column (the table's FLOAT[] type)."""
    import pyarrow as pa
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, dim).cast(pa.list_(pa.float32()))


def arrow_to_matrix(column) -> np.ndarray:
    """An Arrow list/fixed-size-list column of equal-length vectors as float32 (n, dim)."""
    import pyarrow as pa
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    return flat.reshape(n, len(flat) // n)


def insert_vectors(cur, key: str, hashes: Sequence[str], vectors: np.ndarray) -> int:
    """Insert on `cur` the vectors not cached yet under `key` (a cached hash keeps its vector); the number added."""
    import pyarrow as pa
    n, dim = vectors.shape
    table = pa.table({"content_hash": pa.array(list(hashes), pa.string()),
                      "model": pa.array([key] * n, pa.string()),
                      "dim": pa.array(np.full(n, dim, dtype=np.int32)), "vector": vectors_to_arrow(vectors)})
    count = "SELECT count(*) FROM embeddings WHERE model = ?"
    before = cur.execute(count, [key]).fetchall()[0][0]
    insert_frame(cur, "embeddings", table, or_ignore=True)
    return cur.execute(count, [key]).fetchall()[0][0] - before


def store_vectors(store: Store, key: str, hashes: Sequence[str], vectors: np.ndarray) -> int:
    """`insert_vectors` in its own write transaction."""
    return store.write(lambda cur: insert_vectors(cur, key, hashes, vectors))


def missing_hashes(store: Store, key: str, hashes: Sequence[str]) -> set[str]:
    """The hashes among `hashes` with no vector under `key`."""
    cur = store.cursor()
    register(cur, "_emb_want", pd.DataFrame({"content_hash": list(hashes)}))
    try:
        rows = cur.execute("SELECT w.content_hash FROM _emb_want w ANTI JOIN "
                           "(SELECT content_hash FROM embeddings WHERE model = ?) e "
                           "ON e.content_hash = w.content_hash", [key]).fetchall()
    finally:
        cur.unregister("_emb_want")
    return {r[0] for r in rows}


def cached_dim(store: Store, key: str) -> int | None:
    """The dimension of the vectors cached under `key`, or None if there are none."""
    v = store.scalar("SELECT any_value(dim) FROM embeddings WHERE model = ?", [key])
    return None if v is None else int(v)
