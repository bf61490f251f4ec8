"""Semantic duplicates and leaks on a planted set, with the real all-MiniLM-L6-v2 and faiss.

The set (tests/support/semantic_planted.py): 55 paraphrases of real HumanEval problems (reworded
description, renamed identifiers; 45 generated, 10 hand-written), 55 clean examples made from
real stdlib functions, 13 paraphrased duplicates of clean examples (one of them twice), and one
paraphrase of a problem in a user-supplied benchmark file. Embedding is done once per module.
"""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest

from core.dataset.checks import semantic as S
from core.dataset.checks.decontam import run_decontamination
from core.dataset.checks.results import blocking_checks, current_checks, latest_run
from tests.support import semantic_planted as P
from tests.support.seed_data import add_example, wave

N_PARAPHRASES = 45      # + 10 hand-written
N_CLEAN = 55
N_DUPS = 12
USER_PROBLEMS = [
    {"task_id": 11, "text": "Write a function to count the vowels in a sentence and return a dictionary of "
                            "counts per vowel.", "code": "def count_vowels(s):\n    return {v: s.count(v) for v in 'aeiou'}\n"},
    {"task_id": 12, "text": "Write a function to rotate a square matrix by 90 degrees clockwise.",
     "code": "def rotate(m):\n    return [list(r) for r in zip(*m[::-1])]\n"},
    {"task_id": 13, "text": "Write a function to find the longest run of consecutive equal characters in a string.",
     "code": "def longest_run(s):\n    best = cur = 1\n    for a, b in zip(s, s[1:]):\n        cur = cur + 1 if a == b "
             "else 1\n        best = max(best, cur)\n    return best if s else 0\n"},
]
USER_PARAPHRASE = ("Rotate an n-by-n grid ninety degrees clockwise and return the rotated grid.",
                   "def quarter_turn(grid):\n    return [list(row) for row in zip(*grid[::-1])]\n")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from core.store import open_store
    path = tmp_path_factory.mktemp("semantic") / "planted.duckdb"
    store = open_store(path)
    bench = tmp_path_factory.mktemp("bench") / "mine.jsonl"
    bench.write_text("".join(json.dumps(p) + "\n" for p in USER_PROBLEMS))
    ids = {"paraphrase": {}, "clean": {}, "dup": {}}
    for e in P.humaneval_paraphrases(N_PARAPHRASES, seed=0):
        ids["paraphrase"][add_example(store, wave(e["instruction"], e["solution"]))] = e["source"]
    clean = P.stdlib_examples(N_CLEAN, seed=0)
    clean_ids = [add_example(store, wave(e["instruction"], e["solution"])) for e in clean]
    ids["clean"] = dict(zip(clean_ids, [e["source"] for e in clean]))
    rng = random.Random(3)
    for k in list(range(N_DUPS)) + [0]:                     # clean[0] is paraphrased twice: a group of three
        d = P.duplicate_of(clean[k], rng)
        ids["dup"][add_example(store, wave(d["instruction"], d["solution"]))] = clean_ids[k]
    user = add_example(store, wave(*USER_PARAPHRASE))
    spec = f"humaneval,mbpp={bench}"
    leaks = S.run_semantic_decontamination(store, spec)
    dups = S.run_semantic_duplicates(store)
    yield {"store": store, "ids": ids, "user": user, "spec": spec, "leaks": leaks, "dups": dups, "path": path}
    store.close()


def _nearest(store) -> dict[int, dict]:
    cur = current_checks(store, S.LEAK_KIND)
    return {int(g): json.loads(d)["nearest"][0] for g, d in zip(cur["generation_id"], cur["detail"])}


def test_paraphrased_humaneval_problems_are_flagged_and_clean_examples_are_not(planted):
    store, ids = planted["store"], planted["ids"]
    assert len(ids["paraphrase"]) >= 50 and len(ids["clean"]) >= 50
    blocked = {g for g, kinds in blocking_checks(store).items() if S.LEAK_KIND in kinds}
    para, clean = set(ids["paraphrase"]), set(ids["clean"])
    tp, fp = len(blocked & para), len(blocked & clean)
    precision, recall = tp / max(tp + fp, 1), tp / len(para)
    near = _nearest(store)
    right_item = sum(near[g]["item"] == src for g, src in ids["paraphrase"].items() if g in blocked)
    # the figures at a few thresholds, from the stored nearest cosines (no re-embedding)
    curve = {t: (sum(near[g]["similarity"] >= t for g in para) / len(para),
                 sum(near[g]["similarity"] >= t for g in clean)) for t in (0.55, 0.6, 0.62, 0.65, 0.7, 0.75, 0.8)}
    print(f"\nsemantic leaks ({planted['leaks']['model_key']}) at {S.DEFAULT_LEAK_THRESHOLD}: precision {precision:.3f}, recall {recall:.3f} "
          f"({tp}/{len(para)} paraphrases, {fp}/{len(clean)} clean flagged; nearest problem right for "
          f"{right_item}/{tp}); recall / clean flagged by threshold: {curve}")
    assert recall >= 0.85 and precision >= 0.95
    assert right_item >= 0.9 * tp
    assert planted["leaks"]["threshold"] == S.DEFAULT_LEAK_THRESHOLD
    # the token-level checks miss what the semantic one catches
    exact = run_decontamination(store, "humaneval", ngram=12)
    missed_by_tokens = para - {g for g, kinds in blocking_checks(store).items() if "decontamination" in kinds}
    assert len(missed_by_tokens) >= 0.7 * len(para) and exact["n_examples"] == planted["leaks"]["n_examples"]


def test_user_supplied_benchmark_and_side_by_side_texts(planted):
    store = planted["store"]
    near = _nearest(store)[planted["user"]]
    assert (near["benchmark"], near["item"]) == ("mbpp", "12")
    leaks = {r["generation_id"]: r for r in S.semantic_leaks(store)}
    assert planted["user"] in leaks, near
    row = leaks[planted["user"]]
    assert "ninety degrees" in row["example_text"] and "rotate a square matrix" in row["benchmark_text"]
    g, src = next(iter(planted["ids"]["paraphrase"].items()))
    if g in leaks:
        assert leaks[g]["benchmark_text"] and leaks[g]["example_text"]
    assert set(planted["leaks"]["flagged_per_benchmark"]) == {"humaneval", "mbpp"}


def test_planted_duplicates_are_grouped_around_the_kept_original(planted):
    store, ids = planted["store"], planted["ids"]
    groups = S.semantic_groups(store)
    group_of = {m["generation_id"]: grp["group"] for grp in groups for m in grp["members"]}
    for dup, original in ids["dup"].items():
        assert group_of.get(dup) == group_of.get(original) is not None, (dup, original)
        grp = next(x for x in groups if x["group"] == group_of[dup])
        assert grp["keep"] == original                                  # the older one is kept
    blocked = {g for g, kinds in blocking_checks(store).items() if S.DUP_KIND in kinds}
    assert set(ids["dup"]) <= blocked and not (set(ids["dup"].values()) & blocked)
    planted_groups = {group_of[o] for o in ids["dup"].values()}
    other = [x for x in groups if x["group"] not in planted_groups]
    print(f"\nsemantic duplicates: {len(planted_groups)} planted groups found of {len(set(ids['dup'].values()))}; "
          f"{len(other)} other groups among the clean and paraphrased examples: "
          f"{[[ids['clean'].get(m['generation_id'], m['generation_id']) for m in x['members']] for x in other]}")
    assert len(other) <= 3       # e.g. logging.info / logging.error: near-identical code in the stdlib itself
    # the user keeps the paraphrase instead: it passes, the original is rejected
    dup, original = next(iter(ids["dup"].items()))
    members = [m["generation_id"] for m in next(x for x in groups if x["group"] == group_of[dup])["members"]]
    out = S.keep_semantic(store, members, dup, reviewer="ann")
    assert original in out["rejected"] and dup not in blocking_checks(store)
    assert store.scalar("SELECT verdict FROM reviews WHERE generation_id = ?", [original]) == "rejected"


def test_rerun_embeds_nothing_and_the_threshold_is_adjustable(planted):
    store = planted["store"]
    strict = S.run_semantic_duplicates(store, threshold=0.99)
    assert strict["n_embedded"] == 0 and strict["threshold"] == 0.99
    assert strict["n_groups"] < planted["dups"]["n_groups"]
    assert latest_run(store, S.DUP_KIND)["params"]["threshold"] == 0.99
    again = S.run_semantic_decontamination(store, planted["spec"], threshold=0.9)
    assert again["n_embedded"] == 0 and again["n_flagged"] < planted["leaks"]["n_flagged"]


def test_groups_do_not_chain():
    """A ~ B and B ~ C above the threshold, A and C not: B joins the group kept by A, C stays alone."""
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([np.cos(0.3), np.sin(0.3), 0.0])
    c = np.array([np.cos(0.6), np.sin(0.6), 0.0])
    vectors = np.stack([a, b, c]).astype(np.float32)
    threshold = float(np.cos(0.35))               # a·b = b·c = cos 0.3 >= threshold > a·c = cos 0.6
    pairs = S.similar_pairs(vectors, threshold)
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 1), (1, 2)]
    groups = S.groups_around_keepers([0, 1, 2], pairs)
    assert [(g["keep"], [m for m, _ in g["members"]]) for g in groups] == [(0, [0, 1])]
    # B first in keep order: it keeps both, each similar to it
    assert [[m for m, _ in g["members"]] for g in S.groups_around_keepers([1, 0, 2], pairs)] == [[1, 0, 2]]
    # "at least" the threshold: a pair exactly at it counts
    assert S.similar_pairs(np.stack([a, a]).astype(np.float32), 1.0)


def test_minhash_groups_do_not_chain_either():
    """Issue 15: the MinHash / ROUGE-L groups follow the same rule."""
    from core.dataset.checks.neardup import Pair, keeper_groups
    pairs = [Pair(1, 2, 0.7, "minhash"), Pair(2, 3, 0.7, "minhash"), Pair(3, 4, 0.9, "rouge_l")]
    assert [(g["keep"], sorted(m for m, _ in g["members"])) for g in keeper_groups(pairs, set(), set())] == \
        [(1, [1, 2]), (3, [3, 4])]
    # an accepted example is kept first: 2 keeps 1 and 3, 4 (similar to 3 only) stays alone
    assert [(g["keep"], sorted(m for m, _ in g["members"])) for g in keeper_groups(pairs, {2}, set())] == \
        [(2, [1, 2, 3])]


def test_cli_check_semantic(planted):
    from typer.testing import CliRunner

    from core.cli.main import app
    planted["store"].checkpoint()
    out = CliRunner().invoke(app, ["--db", str(planted["path"]), "check", "--no-dedup", "--semantic",
                                   "--semantic-threshold", "0.95", "--json"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["semantic_duplicate"]["threshold"] == 0.95 and data["semantic_duplicate"]["n_embedded"] == 0
    assert data["semantic_decontamination"]["n_flagged"] >= 40
