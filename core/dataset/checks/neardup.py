"""Near-duplicate examples: MinHash LSH over token sets (bigcode settings), optional ROUGE-L.

Tokens are the pieces of instruction + solution split on non-identifier characters (bigcode's
`[^A-Za-z_0-9]`). LSH (datasketch, 128 permutations) proposes candidate pairs; a pair is a
duplicate when the exact Jaccard similarity of the two token sets is >= the threshold (0.58
by default, as bigcode). The self-instruct filter adds pairs whose instructions have
ROUGE-L F1 > 0.7. Groups do not chain (`star_groups`): each has one kept member — an accepted
one if there is one, else a judge-passed one, else the oldest — and the others are the examples
similar to *it*; they fail the check until a person keeps a different one or overrides it.
"""
from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from core.errors import ShoalError
from core.progress import ProgressFn, check_cancel, report
from core.review import current_version, decide
from core.team import members as team

NON_ALPHA = re.compile(r"[^A-Za-z_0-9]")
_ROUGE_TOKEN = re.compile(r"[a-z0-9]+")
DEFAULT_THRESHOLD = 0.58
NUM_PERM = 128
ROUGE_THRESHOLD = 0.7


def token_set(text: str) -> set[str]:
    return {t for t in NON_ALPHA.split(text or "") if t}


def jaccard(a: set, b: set) -> float:
    if not a and not b:
        return 0.0
    return len(a & b) / len(a | b)


def rouge_tokens(text: str) -> list[str]:
    """rouge_score's default tokenizer: lower-case alphanumeric runs."""
    return _ROUGE_TOKEN.findall((text or "").lower())


def rouge_l(a: Sequence[str], b: Sequence[str]) -> float:
    """ROUGE-L F1 between two token lists (longest common subsequence)."""
    if not a or not b:
        return 0.0
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else (prev[j] if prev[j] > cur[j - 1] else cur[j - 1]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(b), lcs / len(a)
    return 2 * p * r / (p + r)


@dataclass
class Pair:
    a: int
    b: int
    similarity: float
    method: str  # minhash | rouge_l


@dataclass
class DupResult:
    pairs: list[Pair] = field(default_factory=list)
    groups: list[list[int]] = field(default_factory=list)   # each sorted, size >= 2


def minhash_pairs(texts: dict[int, str], threshold: float = DEFAULT_THRESHOLD, num_perm: int = NUM_PERM,
                  progress: ProgressFn | None = None, cancel: threading.Event | None = None) -> list[Pair]:
    """Pairs of keys whose token sets have Jaccard >= threshold (LSH candidates, verified exactly)."""
    from datasketch import MinHash, MinHashLSH
    from datasketch.hashfunc import sha1_hash32

    if not 0 < threshold <= 1:
        raise ShoalError("The near-duplicate threshold must be in (0, 1].")
    keys = list(texts)
    sets = [token_set(texts[k]) for k in keys]
    token_hash = lru_cache(maxsize=1 << 20)(sha1_hash32)   # code reuses tokens: hash each once
    hashes = MinHash.bulk([[t.encode("utf-8") for t in s] for s in sets], num_perm=num_perm, hashfunc=token_hash)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sig = np.stack([m.hashvalues for m in hashes]) if hashes else np.zeros((0, num_perm))
    # LSH candidates are first screened by their MinHash estimate (one vectorized compare), with a
    # margin of ~3 standard errors so true pairs are kept; survivors get the exact Jaccard.
    screen = threshold - 3 * np.sqrt(threshold * (1 - threshold) / num_perm)
    pairs: list[Pair] = []
    total = len(keys)
    for i, (k, s, m) in enumerate(zip(keys, sets, hashes)):
        if s:
            cand = np.fromiter((int(o) for o in lsh.query(m)), dtype=np.int64)
            if cand.size:
                est = (sig[cand] == sig[i]).mean(axis=1)
                for j in cand[est >= screen]:
                    sim = jaccard(s, sets[j])
                    if sim >= threshold:
                        pairs.append(Pair(keys[j], k, round(sim, 4), "minhash"))
            lsh.insert(str(i), m)
        if (i + 1) % 1000 == 0 or i + 1 == total:
            check_cancel(cancel)
            report(progress, i + 1, total, "near-duplicates")
    return pairs


def rouge_pairs(instructions: dict[int, str], threshold: float = ROUGE_THRESHOLD,
                cancel: threading.Event | None = None) -> list[Pair]:
    """Pairs of instructions with ROUGE-L F1 > threshold.

    Exact LCS only for pairs that can reach the threshold: the dot product of two token
    count vectors bounds their LCS from above, so F1 <= 2*dot/(len_a+len_b) prunes the rest.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    keys = list(instructions)
    toks = [rouge_tokens(instructions[k]) for k in keys]
    if len(keys) < 2:
        return []
    vec = CountVectorizer(analyzer=lambda x: x)
    try:
        x = vec.fit_transform(toks).astype(np.float32).tocsr()
    except ValueError:  # every instruction empty
        return []
    lengths = np.array([len(t) for t in toks], dtype=np.float32)
    xt = x.T.tocsc()
    pairs: list[Pair] = []
    chunk = 512
    for start in range(0, len(keys), chunk):
        check_cancel(cancel)
        stop = min(start + chunk, len(keys))
        dots = (x[start:stop] @ xt).toarray()
        bound = 2 * dots / (lengths[start:stop, None] + lengths[None, :] + 1e-9)
        rows, cols = np.nonzero(bound > threshold)
        for r, c in zip(rows, cols):
            i, j = start + int(r), int(c)
            if j <= i:
                continue
            f1 = rouge_l(toks[i], toks[j])
            if f1 > threshold:
                pairs.append(Pair(keys[i], keys[j], round(f1, 4), "rouge_l"))
    return pairs


def star_groups(pairs: Iterable[Pair], rank: Callable[[int], Any] | None = None) -> list[tuple[int, list[int]]]:
    """Groups that do not chain: (kept, members) where every other member is similar to the kept one.

    Greedy: the best-ranked example (lowest `rank`, default its id) that still has a similar
    ungrouped example becomes a group's kept example, and the group is it plus every ungrouped
    example similar to it. An example similar only to a member that is not kept is left for a
    later group (or none), so A~B~C never puts A and C together unless A~C or B is kept.
    """
    rank = rank or (lambda x: x)
    neighbours: dict[int, set[int]] = {}
    for p in pairs:
        if p.a != p.b:
            neighbours.setdefault(p.a, set()).add(p.b)
            neighbours.setdefault(p.b, set()).add(p.a)
    grouped: set[int] = set()
    out = []
    for center in sorted(neighbours, key=lambda x: (rank(x), x)):
        if center in grouped:
            continue
        members = [m for m in neighbours[center] if m not in grouped]
        if not members:
            continue
        group = sorted([center, *members])
        grouped.update(group)
        out.append((center, group))
    return sorted(out, key=lambda cg: cg[1][0])


def group_pairs(pairs: Iterable[Pair], rank: Callable[[int], Any] | None = None) -> list[list[int]]:
    """The members of each `star_groups` group, sorted, groups in order of their smallest member."""
    return [group for _, group in star_groups(pairs, rank)]


def find_near_duplicates(texts: dict[int, str], threshold: float = DEFAULT_THRESHOLD,
                         instructions: dict[int, str] | None = None, rouge: bool = False,
                         progress: ProgressFn | None = None,
                         cancel: threading.Event | None = None,
                         rank: Callable[[int], Any] | None = None) -> DupResult:
    """Pairs and their groups (`star_groups`: `rank` orders who is kept, best first)."""
    pairs = minhash_pairs(texts, threshold, progress=progress, cancel=cancel)
    if rouge and instructions:
        pairs += rouge_pairs(instructions, cancel=cancel)
    return DupResult(pairs, group_pairs(pairs, rank))


def choose_keep(group: list[int], accepted: set[int], judge_passed: set[int]) -> int:
    for pool in (accepted, judge_passed):
        inside = [g for g in group if g in pool]
        if inside:
            return min(inside)
    return min(group)


def keeper_groups(pairs: Iterable[Pair], accepted: set[int], judge_passed: set[int]) -> list[dict]:
    """Groups that do not chain (issue 15): in keep order (accepted, judge-passed, oldest), each
    example not yet grouped keeps the ungrouped ones similar to it; members are similar to the
    kept one itself, not only to another member. [{keep, members: [(id, similarity to keep)]}]"""
    pairs = list(pairs)
    items = sorted({x for p in pairs for x in (p.a, p.b)},
                   key=lambda g: (g not in accepted, g not in judge_passed, g))
    return groups_around_keepers(items, [(p.a, p.b, p.similarity) for p in pairs])


def run_near_duplicates(store, threshold: float = DEFAULT_THRESHOLD, rouge: bool = False,
                        progress: ProgressFn | None = None,
                        cancel: threading.Event | None = None) -> dict:
    """Check every example not rejected by a person (accepted ones included); record a run."""
    from core.dataset.checks.examples import load_examples
    from core.dataset.checks.results import record_run

    ex = load_examples(store, "coalesce(r.verdict, '') <> 'rejected'")
    ids = ex["generation_id"].astype(int).tolist()
    texts = {g: f"{i}\n{s}" for g, i, s in zip(ids, ex["instruction"], ex["solution"])}
    instr = dict(zip(ids, ex["instruction"]))
    accepted = set(ex.loc[ex["verdict"] == "accepted", "generation_id"].astype(int))
    judged = set(ex.loc[ex["judge_overall"].fillna(False).astype(bool), "generation_id"].astype(int))
    t0 = time.perf_counter()
    res = find_near_duplicates(texts, threshold, instr, rouge, progress, cancel,
                               rank=lambda g: (0 if g in accepted else 1 if g in judged else 2, g))
    seconds = time.perf_counter() - t0
    pair_of: dict[tuple[int, int], tuple[float, str]] = {}
    for p in res.pairs:
        key = (min(p.a, p.b), max(p.a, p.b))
        if p.similarity > pair_of.get(key, (-1.0, ""))[0]:
            pair_of[key] = (p.similarity, p.method)
    groups = res.groups
    detail_of: dict[int, dict] = {}
    def pair(x: int, y: int) -> tuple[float, str]:
        return pair_of.get((min(x, y), max(x, y)), (0.0, ""))

    for grp in res.groups:
        keep = choose_keep(grp, accepted, judged)   # the group's centre: every member is similar to it
        for g in grp:
            # a member: its similarity to the kept one; the kept one: to its closest member
            other = keep if g != keep else max((m for m in grp if m != keep), key=lambda m: pair(keep, m)[0])
            sim, method = pair(g, other)
            detail_of[g] = {"group": grp[0], "keep": keep, "members": grp[:50], "size": len(grp),
                            "similarity": sim, "similar_to": other, "method": method}
    results = []
    for g in ids:
        d = detail_of.get(g)
        results.append((g, d is None or d["keep"] == g, d or {}))
    summary = {"n_examples": len(ids), "n_pairs": len(res.pairs), "n_groups": len(groups),
               "n_flagged": sum(1 for _, ok, _ in results if not ok),
               "n_rouge_pairs": sum(1 for p in res.pairs if p.method == "rouge_l"),
               "accepted_flagged": sorted(g for g, ok, _ in results if not ok and g in accepted),
               "seconds": round(seconds, 3)}
    params = {"threshold": threshold, "num_perm": NUM_PERM, "rouge_l": ROUGE_THRESHOLD if rouge else None,
              "tokens": "split on [^A-Za-z_0-9], instruction + solution"}
    summary["run_id"] = record_run(store, "near_duplicate", params, summary, results)
    return summary


def duplicate_groups(store) -> list[dict]:
    """The groups of the latest near-duplicate run with each member's current state."""
    from core.dataset.checks.results import check_groups
    return check_groups(store, "near_duplicate", ("similarity", "similar_to", "method"))


def keep_one(store, members: list[int], keep: int, reviewer: str, note: str | None = None,
             kind: str = "near_duplicate") -> dict:
    """Keep `keep`, reject the other members with a review note; the kept one passes the check
    (`kind`: near_duplicate, or semantic_duplicate for the embedding groups)."""
    from core.dataset.checks.results import record_run

    team.authorize(store, reviewer, "checks", target=keep, audit_allowed=False)   # each rejection is audited
    if keep not in members:
        raise ShoalError(f"#{keep} is not in this duplicate group.")
    if not (reviewer or "").strip():
        raise ShoalError("Set a reviewer name first.")
    note = note or f"near-duplicate of #{keep}"
    rejected = []
    for g in members:
        if g == keep:
            continue
        decide(store, g, "rejected", reviewer=reviewer, expected_version=current_version(store, g), note=note,
               reasons=["duplicate"])
        rejected.append(g)
    results = [(g, g == keep, {"group": min(members), "keep": keep, "members": sorted(members),
                                "size": len(members), "decided_by": reviewer}) for g in members]
    record_run(store, kind, {"action": "keep_one", "keep": keep, "reviewer": reviewer},
               {"n_examples": len(members), "kept": keep, "rejected": rejected}, results)
    return {"kept": keep, "rejected": rejected}


def groups_around_keepers(order: Sequence[int], pairs: Iterable[tuple[int, int, float]]) -> list[dict]:
    """Groups that do not chain. `order`: the items, best to keep first. Each item not yet grouped
    keeps a group of the ungrouped items similar to it; [{keep, members: [(item, sim to keep)]}]."""
    near: dict[int, dict[int, float]] = defaultdict(dict)
    for a, b, s in pairs:
        near[a][b] = s
        near[b][a] = s
    taken: set[int] = set()
    groups = []
    for item in order:
        if item in taken or not near.get(item):
            continue
        members = [(o, s) for o, s in sorted(near[item].items(), key=lambda kv: -kv[1]) if o not in taken]
        if not members:
            continue
        taken.add(item)
        taken.update(o for o, _ in members)
        groups.append({"keep": item, "members": [(item, 1.0)] + members})
    return groups
