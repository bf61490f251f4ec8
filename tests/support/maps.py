"""A store with a map to test against: snippets in three planted topics (plus far-out seed fragments),
their vectors under model "test-model", and a map built on them; and a reference point-in-polygon test."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from core.embed.run import _store_vectors, snippet_text, text_hash
from core.maps import build as maps

TOPICS = {
    "json": ("parse_json_token", "Decode a JSON token from the text.",
             "    tokens = scan_json(text)\n    return decode_token(tokens[{i}])\n"),
    "socket": ("open_socket_connection", "Connect a socket to the remote host.",
               "    sock = socket.create_connection((host, {i}))\n    sock.sendall(payload)\n    return sock\n"),
    "matrix": ("multiply_matrix_rows", "Multiply the rows of a matrix by a vector.",
               "    rows = [sum(a * b for a, b in zip(row, vector)) for row in matrix[{i}:]]\n    return rows\n"),
}


def planted_corpus(per_topic: int = 40, dim: int = 32, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Snippets in three planted topics and vectors drawn around one centre per topic."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(TOPICS), dim)) * 4
    spread = np.linspace(1.5, 0.05, dim)  # anisotropic like real embeddings: a few directions dominate
    rows, vecs = [], []
    for t, (topic, (name, doc, body)) in enumerate(TOPICS.items()):
        for i in range(per_topic):
            code = f"def {name}_{i}(text, host, payload, matrix, vector):\n    \"\"\"{doc}\"\"\"\n" + body.format(i=i)
            rows.append({"id": hashlib.sha256(code.encode()).hexdigest()[:32], "kind": "function",
                         "source": f"demo-{topic}", "source_kind": "dir", "language": "python" if i % 4 else "go",
                         "code": code, "n_chars": len(code), "func_name": f"{name}_{i}", "docstring": doc,
                         "path": f"{topic}.py"})
            vecs.append(centres[t] + rng.normal(size=dim) * spread)
    return pd.DataFrame(rows), np.asarray(vecs, dtype=np.float32)


def add_vectors(store, snips: pd.DataFrame, X: np.ndarray, key: str = "test-model") -> None:
    hashes = [text_hash(snippet_text(r.func_name, r.docstring, r.code)) for r in snips.itertuples()]
    _store_vectors(store, key, hashes, X)


def make_mapped_store(store, per_topic: int = 40, n_clusters: int | None = 3) -> int:
    """A store with planted snippets, their vectors (model 'test-model') and a map; returns the map id."""
    snips, X = planted_corpus(per_topic)
    store.insert_df("snippets", snips)
    add_vectors(store, snips, X)
    return maps.build_map(store, model="test-model", n_clusters=n_clusters, n_epochs=30, seed=7).map_id


def seed_fragments(n: int = 12, dim: int = 32, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """OSS-Instruct-like seed fragments whose vectors lie far out (farthest-point picks them first)."""
    rng = np.random.default_rng(seed)
    rows, vecs = [], []
    for i in range(n):
        code = f"try:\n    value_{i} = lookup({i})\nexcept KeyError:\n    pass\n"
        rows.append({"id": hashlib.sha256(code.encode()).hexdigest()[:32], "kind": "seed", "source": "demo-seeds",
                     "source_kind": "dir", "language": "python", "code": code, "n_chars": len(code),
                     "func_name": None, "docstring": None, "path": "seeds.py"})
        vecs.append(rng.normal(size=dim) * 12)
    return pd.DataFrame(rows), np.asarray(vecs, dtype=np.float32)


def make_mapped_store_with_seeds(store, per_topic: int = 40) -> int:
    """`make_mapped_store` plus 12 outlying seed fragments on the same map; returns the map id."""
    snips, X = planted_corpus(per_topic)
    seeds, S = seed_fragments()
    store.insert_df("snippets", snips)
    store.insert_df("snippets", seeds)
    add_vectors(store, snips, X)
    add_vectors(store, seeds, S)
    return maps.build_map(store, model="test-model", n_clusters=3, n_epochs=30, seed=7).map_id


def crossings_reference(x, y, px, py) -> np.ndarray:
    """Textbook even-odd test, one point at a time."""
    out = []
    for i, (a, b) in enumerate(zip(x, y)):
        inside = False
        for j in range(len(px)):
            x0, y0, x1, y1 = px[j], py[j], px[(j + 1) % len(px)], py[(j + 1) % len(px)]
            if (y0 > b) != (y1 > b) and a < x0 + (b - y0) * (x1 - x0) / (y1 - y0):
                inside = not inside
        if inside:
            out.append(i)
    return np.array(out, dtype=np.int64)
