"""What a threshold would exclude: the semantic checks' groups and leaks at another threshold, read
from cached vectors and the latest run's stored cosines (nothing embedded, nothing recorded), for
the Dataset page's slider."""
from __future__ import annotations

import json

from core.dataset.checks.examples import load_examples
from core.dataset.checks.semantic import (
    DUP_KIND,
    EMBED_CHARS,
    LEAK_KIND,
    cached_vectors,
    duplicate_candidates,
    duplicate_details,
    latest_semantic_run,
    n_uncached,
)
from core.store import Store


def state_stamp(store: Store) -> tuple:
    """Changes whenever examples, verdicts or check rows change (a page's key for caching a preview)."""
    row = store.rows("SELECT (SELECT count(*) FROM generations) AS g, (SELECT coalesce(max(id), 0) FROM checks) AS c, "
                     "(SELECT count(*) || ':' || coalesce(sum(version), 0) FROM review_records) AS r, "
                     "(SELECT count(*) FROM checks WHERE overridden) AS o")[0]
    return tuple(row.values())


def _excluded_now(store: Store, kind: str) -> set[int]:
    from core.dataset.checks.results import current_checks
    cur = current_checks(store, kind)
    if cur.empty:
        return set()
    bad = cur[~cur["passed"].astype(bool) & ~cur["overridden"].fillna(False).astype(bool)]
    return set(bad["generation_id"].astype(int))


def _overridden_now(store: Store, kind: str) -> set[int]:
    from core.dataset.checks.results import current_checks
    cur = current_checks(store, kind)
    return set() if cur.empty else set(cur[cur["overridden"].fillna(False).astype(bool)]["generation_id"].astype(int))


def _preview(store: Store, kind: str, would: set[int], threshold: float, **extra) -> dict:
    """What flagging `would` means: how many leave the export, how many of those a person accepted
    (they wait for confirmation before an export), and the difference to what is excluded now."""
    accepted = {int(g) for (g,) in store.execute(
        "SELECT generation_id FROM reviews WHERE verdict = 'accepted'").fetchall()}
    would = would - _overridden_now(store, kind)      # an override is carried over to the next run
    now = _excluded_now(store, kind)
    return {"threshold": threshold, "n_excluded": len(would), "n_excluded_accepted": len(would & accepted),
            "n_excluded_now": len(now), "newly_excluded": sorted(would - now),
            "no_longer_excluded": sorted(now - would), **extra}


def preview_duplicates(store: Store, threshold: float, model_key: str | None = None) -> dict:
    """The groups and exclusions `threshold` would give, from cached vectors only (nothing is embedded
    or recorded). `missing` > 0: that many examples have no cached vector yet; run the check first."""
    from core.embed import run as embed

    key = model_key or ((latest_semantic_run(store, DUP_KIND) or {}).get("params") or {}).get("model_key")
    ex = duplicate_candidates(store)
    if key is None or ex.empty:
        return {"threshold": threshold, "missing": len(ex), "model_key": key}
    hashes = [embed.text_hash(t[:EMBED_CHARS]) for t in ex["text"]]
    vectors = cached_vectors(store, key, hashes)
    if vectors is None:
        return {"threshold": threshold, "missing": n_uncached(store, key, hashes), "model_key": key}
    detail_of, n_pairs, n_groups = duplicate_details(ex, vectors, threshold)
    would = {g for g, d in detail_of.items() if d["keep"] != g}
    return _preview(store, DUP_KIND, would, threshold, missing=0, model_key=key, n_groups=n_groups,
                    n_pairs=n_pairs)


def preview_leaks(store: Store, threshold: float) -> dict:
    """The exclusions `threshold` would give, from the nearest cosines the latest leak run stored."""
    from core.dataset.checks.results import current_checks

    cur = current_checks(store, LEAK_KIND)
    best = {}
    for g, d in zip(cur["generation_id"], cur["detail"]):
        near = (json.loads(d) if d else {}).get("nearest") or []
        best[int(g)] = near[0]["similarity"] if near else 0.0
    n_examples = len(load_examples(store))
    would = {g for g, s in best.items() if s >= threshold}
    return _preview(store, LEAK_KIND, would, threshold, n_checked=len(best), n_unchecked=max(0, n_examples - len(best)))
