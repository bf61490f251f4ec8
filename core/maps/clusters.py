"""A map's clusters and their names.

* Clusters: k-means on the embeddings (default; k from the corpus size, see
  `auto_n_clusters`; MiniBatchKMeans above `MINIBATCH_ABOVE` points), or HDBSCAN on the
  2D map coordinates (the islands a user sees; points in no island get cluster -1).
  Clusters are renumbered by size, largest first, so numbers are stable across runs.
* Labels: c-TF-IDF (as in BERTopic) over the words of each snippet's identifiers (split
  on snake_case and camelCase, function names weighted up) and docstring: a term scores
  high when many snippets of the cluster use it and few clusters overall do.
"""
from __future__ import annotations

import re
import warnings

import numpy as np

from core.errors import ShoalError

LABEL_SAMPLE = 60_000      # cluster names from at most this many snippets (seeded, per-cluster share kept)
MINIBATCH_ABOVE = 30_000
MAX_AUTO_CLUSTERS = 40
CLUSTER_METHODS = ("kmeans", "hdbscan")
NOISE = -1

_STOPWORDS_CODE = """
self cls return returns none true false def class args kwargs param params type raise raises import
from function var let const public private protected static void int string str new this func err
nil end null bool elif else while for try except finally with lambda yield async await pass break
continue assert global nonlocal del not and or is in if the value values result obj object len isinstance
instance true false undefined typeof instanceof package interface extends implements throws throw final
abstract override struct impl pub mut use mod crate match case switch default goto char long short
float double byte unsigned signed auto sizeof template typename namespace std include define ifdef endif
echo array require once elseif foreach endforeach php rb begin rescue ensure unless until module then
do done fi esac local export print println printf fmt log console var val fun
arg argv arr tmp temp foo bar baz item items key keys res ret retval name names
""".split()


def auto_n_clusters(n: int) -> int:
    """sqrt(n/4), at least 2 and at most MAX_AUTO_CLUSTERS (a map with more colours is unreadable)."""
    if n < 2:
        return 1
    return int(min(MAX_AUTO_CLUSTERS, n, max(2, round(np.sqrt(n / 4)))))


# --------------------------------------------------------------------------- clusters

def _renumber_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids 0..k-1 by size (largest first; ties by first member); noise stays -1."""
    out = np.full(len(labels), NOISE, dtype=np.int64)
    groups = [g for g in np.unique(labels) if g != NOISE]
    order = sorted(groups, key=lambda g: (-int((labels == g).sum()), int(np.argmax(labels == g))))
    for new, g in enumerate(order):
        out[labels == g] = new
    return out


def cluster_points(X: np.ndarray, coords: np.ndarray, method: str = "kmeans", n_clusters: int | None = None,
                   seed: int = 42) -> np.ndarray:
    """Cluster id per point (see the module docstring)."""
    n = len(X)
    if method not in CLUSTER_METHODS:
        raise ShoalError(f"Unknown clustering method {method!r}; use one of {', '.join(CLUSTER_METHODS)}.")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if method == "kmeans":
        k = auto_n_clusters(n) if not n_clusters else int(n_clusters)
        if k < 1:
            raise ShoalError("The number of clusters must be at least 1.")
        if k > n:
            raise ShoalError(f"Cannot make {k} clusters from {n} embedded snippets; ask for at most {n}.")
        if k == 1:
            return np.zeros(n, dtype=np.int64)
        from sklearn.cluster import KMeans, MiniBatchKMeans
        if n > MINIBATCH_ABOVE:
            km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
        else:
            km = KMeans(n_clusters=k, random_state=seed, n_init=3 if n <= 10_000 else 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            labels = km.fit_predict(X.astype(np.float32, copy=False))
    else:
        from sklearn.cluster import HDBSCAN
        min_size = int(n_clusters) if n_clusters else max(5, n // 100)
        if n < max(min_size, 3):
            return np.zeros(n, dtype=np.int64)
        labels = HDBSCAN(min_cluster_size=max(2, min_size), copy=True).fit_predict(coords.astype(np.float64))
    return _renumber_by_size(np.asarray(labels))


# --------------------------------------------------------------------------- labels

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^A-Za-z]+")


def label_words(text: str) -> str:
    """Identifiers and prose split into lowercase words: ``parseHTTPHeader_v2`` -> ``parse http header v``."""
    if not isinstance(text, str) or not text:   # NULL columns arrive from pandas as NaN
        return ""
    return _NON_WORD.sub(" ", _CAMEL.sub(" ", text)).lower()


def cluster_labels(labels: np.ndarray, func_names, docstrings, codes, top: int = 10,
                   n_label_terms: int = 3) -> dict[int, tuple[str, list[dict]]]:
    """c-TF-IDF terms per cluster: {cluster: (label, [{"term", "score"}...])}."""
    from scipy import sparse
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    labels = np.asarray(labels)
    stop = sorted(set(ENGLISH_STOP_WORDS) | set(_STOPWORDS_CODE))
    vec = CountVectorizer(token_pattern=r"\b[a-z]{3,24}\b", stop_words=stop, binary=True, lowercase=False)
    body = [label_words(f"{d if isinstance(d, str) else ''} {c if isinstance(c, str) else ''}")
            for d, c in zip(docstrings, codes)]   # NaN (a NULL docstring) must not become the word "nan"
    names = [label_words(f) for f in func_names]
    try:
        vec.fit(body + names)
    except ValueError:  # no words at all
        return {int(g): (f"cluster {int(g)}", []) for g in np.unique(labels)}
    # a snippet "uses" a term (0/1) in its code/docstring; its function name counts 2 more
    M = vec.transform(body) + 2 * vec.transform(names)
    groups = np.unique(labels)
    rows = np.searchsorted(groups, labels)
    member = sparse.csr_matrix((np.ones(len(labels)), (rows, np.arange(len(labels)))),
                               shape=(len(groups), len(labels)))
    counts = np.asarray((member @ M).todense(), dtype=np.float64)  # clusters x terms
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    avg_words = counts.sum() / max(len(groups), 1)
    idf = np.log(1 + avg_words / np.maximum(counts.sum(axis=0), 1))
    score = tf * idf
    vocab = np.array(vec.get_feature_names_out())
    out = {}
    for r, g in enumerate(groups):
        row = score[r]
        # at least 2 snippets of the cluster (or all of a tiny one) must use the term
        ok = counts[r] >= min(2, (labels == g).sum())
        idx = [i for i in np.lexsort((vocab, -row)) if ok[i] and row[i] > 0][:top]
        terms = [{"term": str(vocab[i]), "score": round(float(row[i]), 5)} for i in idx]
        label = " · ".join(str(vocab[i]) for i in idx[:n_label_terms]) or f"cluster {int(g)}"
        if int(g) == NOISE:
            label = "unclustered"
        out[int(g)] = (label, terms)
    return out


def label_sample(labels: np.ndarray, limit: int = LABEL_SAMPLE, seed: int = 42,
                 per_cluster_floor: int = 200) -> np.ndarray:
    """Rows to name the clusters from: all of them up to `limit`; above, a seeded random share
    of each cluster (at least `per_cluster_floor` of it), so a big corpus never loads every
    snippet's code just to name 40 clusters."""
    n = len(labels)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    out = []
    for g in np.unique(labels):
        members = np.flatnonzero(labels == g)
        take = min(len(members), max(per_cluster_floor, int(round(limit * len(members) / n))))
        out.append(rng.choice(members, take, replace=False))
    return np.sort(np.concatenate(out))
